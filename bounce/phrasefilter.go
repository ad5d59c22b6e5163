package bounce

import (
	"slices"
	"strings"
)

// A phrase can only occur in a text where each of its two-byte sequences
// (bigrams) occurs too. bigramSet records, in one pass over a text, which
// bigrams it holds (by a key that several bigrams may share, which only
// lets a phrase through, never stops one); phraseKeys are a phrase's.
// A phrase whose keys are not all in the set is absent, and the phrase
// lists (about 500 built-in rules, the command phrases, the copy markers)
// skip the strings.Index each would cost over the whole text; the phrases
// that pass are looked for exactly as before, so the results do not
// change. What it saves, in BenchmarkParseCorpus's CPU profile: the
// built-in rules' searches went from about a fifth of the time to about
// a twentieth, the command phrases' from 8 % to 2 %; see
// docs/performance.md for the same-run A/B.
//
// Written here rather than taken from an Aho-Corasick package: the lists
// need every phrase that occurs, overlapping ones included, from a matcher
// shared by concurrent Parse calls; github.com/cloudflare/ahocorasick
// reports that only through a per-call map taken from a pool and keeps 256
// child pointers per trie node (megabytes for these phrases), and
// github.com/petar-dambovaliev/aho-corasick reports non-overlapping
// matches only.

// bigramSet is the set of bigrams of a text, by bigramKey. A byte per key
// (4 KiB, on the stack of its user) rather than a bit: the pass over the
// text is then stores only, about 1.4 times as fast as setting bits in a
// micro benchmark over 4 KiB of notice.
type bigramSet [1 << 12]bool

// bigramKey maps the bigram a, b to an entry of a bigramSet: the low six
// bits of each byte, which keep the lower-case letters and the space
// apart (digits, punctuation and other bytes share their keys, which only
// lets a phrase through).
func bigramKey(a, b byte) uint16 {
	return uint16(a&63)<<6 | uint16(b&63)
}

// add records the bigrams of text.
func (s *bigramSet) add(text string) {
	for i := 1; i < len(text); i++ {
		s[bigramKey(text[i-1], text[i])] = true
	}
}

// mayContain reports whether a text with this set can contain a phrase
// with these keys; false means it cannot.
func (s *bigramSet) mayContain(keys []uint16) bool {
	for _, k := range keys {
		if !s[k] {
			return false
		}
	}
	return true
}

// phraseKeys returns the distinct bigram keys a text must hold to contain
// pattern: those of each fragment of a gapped rule pattern (see
// matchPattern), the gaps themselves standing for any text.
func phraseKeys(pattern string) []uint16 {
	var keys []uint16
	for _, frag := range strings.Split(pattern, gapSep) {
		for i := 1; i < len(frag); i++ {
			k := bigramKey(frag[i-1], frag[i])
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// phraseKeyList returns the phraseKeys of each phrase.
func phraseKeyList(phrases []string) [][]uint16 {
	keys := make([][]uint16, len(phrases))
	for i, p := range phrases {
		keys[i] = phraseKeys(p)
	}
	return keys
}
