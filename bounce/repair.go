package bounce

import (
	"bytes"
)

// repairFolding indents parameter lines that real bounces forget to fold:
// a header line ending in ";" followed by an unindented "name=value"
// line (Verizon, Office 365). Without the repair the header is malformed
// (RFC 5322 §2.2.3) and the MIME structure below it is lost. It returns
// raw itself when there is nothing to repair.
func repairFolding(raw []byte) []byte {
	var out []byte
	start := 0
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], ';')
		if j < 0 {
			break
		}
		j += i
		next := j + 1
		if next < len(raw) && raw[next] == '\r' {
			next++
		}
		if next < len(raw) && raw[next] == '\n' && isParamLine(raw[next+1:]) {
			out = append(out, raw[start:next+1]...)
			out = append(out, '\t')
			start = next + 1
		}
		i = j + 1
	}
	if out == nil {
		return raw
	}
	return append(out, raw[start:]...)
}

// isParamLine reports whether b starts with a MIME parameter "name=".
func isParamLine(b []byte) bool {
	n := 0
	for n < len(b) && n < 40 && (b[n] >= 'a' && b[n] <= 'z' || b[n] >= 'A' && b[n] <= 'Z' || b[n] == '-' || n > 0 && b[n] >= '0' && b[n] <= '9') {
		n++
	}
	return n > 0 && n < len(b) && b[n] == '='
}
