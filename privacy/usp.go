package privacy

// uspOptOut reads a CCPA string (IAB US Privacy, "1YNN"): version '1', then
// notice given, opted out of sale, LSPA covered, each 'Y', 'N' or '-' (not
// applicable). ok is false for anything else; optOut is the third character
// being 'Y'. It takes lowercase letters too and does not allocate.
func uspOptOut(s []byte) (optOut, ok bool) {
	if len(s) != 4 || s[0] != '1' {
		return false, false
	}
	for _, c := range s[1:] {
		switch c {
		case 'Y', 'y', 'N', 'n', '-':
		default:
			return false, false
		}
	}
	return s[2] == 'Y' || s[2] == 'y', true
}
