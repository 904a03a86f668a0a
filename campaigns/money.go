package campaigns

import (
	"errors"
	"strconv"
	"strings"
)

// Micro-units: every amount of money is an int64 count of millionths of the
// campaign currency (4.50 USD = 4_500_000).
const MicrosPerUnit = 1_000_000

var (
	errAmountEmpty     = errors.New("empty amount")
	errAmountNegative  = errors.New("negative amount")
	errAmountPrecision = errors.New("more than 6 decimals")
	errAmountSyntax    = errors.New("not a decimal number")
	errAmountRange     = errors.New("amount too large")
)

// ParseMicros converts the decimal text of an amount ("4.50", "4.5", "12",
// "0.000001") into micro-units exactly, without going through float64. It
// rejects signs other than a leading '+', exponents, more than 6 decimals and
// values that overflow int64.
func ParseMicros(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errAmountEmpty
	}
	if s[0] == '-' {
		return 0, errAmountNegative
	}
	if s[0] == '+' {
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, errAmountSyntax
	}
	if !digitsOnly(whole) || !digitsOnly(frac) {
		return 0, errAmountSyntax
	}
	if len(frac) > 6 {
		// Trailing zeros beyond the sixth decimal carry no value: "1.5000000" is fine.
		if strings.TrimRight(frac[6:], "0") != "" {
			return 0, errAmountPrecision
		}
		frac = frac[:6]
	}
	var w int64
	if whole != "" {
		v, err := strconv.ParseInt(whole, 10, 64)
		if err != nil || v > (1<<63-1)/MicrosPerUnit-1 {
			return 0, errAmountRange
		}
		w = v
	}
	var f int64
	for i := 0; i < 6; i++ {
		f *= 10
		if i < len(frac) {
			f += int64(frac[i] - '0')
		}
	}
	return w*MicrosPerUnit + f, nil
}

func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatMicros renders micro-units as a decimal amount with at least two
// decimals ("4.50", "0.000001"); the inverse of ParseMicros.
func FormatMicros(m int64) string {
	neg := m < 0
	if neg {
		m = -m
	}
	whole, frac := m/MicrosPerUnit, m%MicrosPerUnit
	fs := strconv.FormatInt(frac+MicrosPerUnit, 10)[1:] // six digits
	fs = strings.TrimRight(fs, "0")
	for len(fs) < 2 {
		fs += "0"
	}
	s := strconv.FormatInt(whole, 10) + "." + fs
	if neg {
		s = "-" + s
	}
	return s
}
