package bounce

import (
	"slices"
	"strings"
)

// A phrase can only occur in a text where each of its two-byte sequences
// (bigrams) occurs too. bigramSet records, in one pass over a text, which
// bigrams it holds (hashed into a fixed bit set, so a collision only lets
// a phrase through, never stops one); phraseKeys are a phrase's bigrams.
// A phrase whose keys are not all in the set is absent, and the phrase
// lists (about 500 built-in rules, the command phrases, the copy
// markers) skip the strings.Index each would cost over the whole text;
// the phrases that pass are looked for exactly as before, so the results
// do not change. Built by hand: the lists need "which phrases occur,
// overlapping ones included", which the maintained Go Aho-Corasick
// packages either do not report or do not report safely for concurrent
// use.

// bigramBits is the size of a bigramSet: 4096 bits (512 bytes) keep it on
// the stack, and a notice of kilobytes sets few enough of them that most
// absent phrases miss at their first or second key.
const bigramBits = 1 << 12

// bigramSet is the set of hashed bigrams of a text.
type bigramSet [bigramBits / 64]uint64

// bigramKey hashes the bigram a, b to a bit of a bigramSet.
func bigramKey(a, b byte) uint16 {
	return uint16((uint32(a)<<8 | uint32(b)) * 0x9E3779B1 >> (32 - 12))
}

// add records the bigrams of text.
func (s *bigramSet) add(text string) {
	for i := 1; i < len(text); i++ {
		k := bigramKey(text[i-1], text[i])
		s[k>>6] |= 1 << (k & 63)
	}
}

// mayContain reports whether a text with this set can contain a phrase
// with these keys; false means it cannot.
func (s *bigramSet) mayContain(keys []uint16) bool {
	for _, k := range keys {
		if s[k>>6]&(1<<(k&63)) == 0 {
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
