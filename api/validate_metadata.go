package api

import (
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// tags checks the tag list: at most MaxTags, each non-empty, at most
// MaxTagLength characters and free of control characters. Over the count
// limit only "/tags" is reported.
func (c *messageCheck) tags(tags []string) {
	if len(tags) > c.lim.MaxTags {
		c.add("/tags", fmt.Sprintf("at most %d tags are allowed", c.lim.MaxTags))
		return
	}
	for i, tag := range tags {
		ptr := "/tags/" + strconv.Itoa(i)
		switch {
		case tag == "":
			c.add(ptr, "must not be empty")
		case headerTextProblem(tag, false) != "":
			c.add(ptr, headerTextProblem(tag, false))
		case utf8.RuneCountInString(tag) > c.lim.MaxTagLength:
			c.add(ptr, fmt.Sprintf("must be at most %d characters", c.lim.MaxTagLength))
		}
	}
}

// metadata checks the flat string map in sorted key order: at most
// MaxMetadataKeys keys (else only "/metadata" is reported), each key
// non-empty and at most MaxMetadataKey characters, each value at most
// MaxMetadataValue characters. Values may hold any text: metadata never
// reaches a message header.
func (c *messageCheck) metadata(md map[string]string) {
	if len(md) == 0 {
		return
	}
	if len(md) > c.lim.MaxMetadataKeys {
		c.add("/metadata", fmt.Sprintf("at most %d keys are allowed", c.lim.MaxMetadataKeys))
		return
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ptr := "/metadata/" + pointerToken(k)
		switch {
		case k == "":
			c.add(ptr, "key must not be empty")
		case utf8.RuneCountInString(k) > c.lim.MaxMetadataKey:
			c.add(ptr, fmt.Sprintf("key must be at most %d characters", c.lim.MaxMetadataKey))
		case utf8.RuneCountInString(md[k]) > c.lim.MaxMetadataValue:
			c.add(ptr, fmt.Sprintf("value must be at most %d characters", c.lim.MaxMetadataValue))
		}
	}
}
