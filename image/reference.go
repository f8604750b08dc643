package image

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// parsedRef is a normalized image reference: a name with either a tag or a
// digest. When a reference carries both ("name:tag@sha256:..."), the digest
// wins and the tag is dropped, as containerd's ParseDockerRef does.
type parsedRef struct {
	named  reference.Named
	tag    string // "" when pulled by digest
	digest string // "" when pulled by tag
}

// parseRef normalizes ref: "busybox" -> "docker.io/library/busybox:latest".
func parseRef(ref string) (parsedRef, error) {
	named, err := reference.ParseNormalizedNamed(strings.TrimSpace(ref))
	if err != nil {
		return parsedRef{}, fmt.Errorf("%w %q: %v", ErrInvalidReference, ref, err)
	}
	p := parsedRef{named: reference.TrimNamed(named)}
	if d, ok := named.(reference.Digested); ok {
		p.digest = d.Digest().String()
		return p, nil
	}
	if t, ok := reference.TagNameOnly(named).(reference.Tagged); ok {
		p.tag = t.Tag()
	}
	return p, nil
}

// name is the repository name, e.g. "docker.io/library/busybox".
func (p parsedRef) name() string { return p.named.Name() }

// tagRef is "name:tag", the form kept in RepoTags; "" for digest refs.
func (p parsedRef) tagRef() string {
	if p.tag == "" {
		return ""
	}
	return p.name() + ":" + p.tag
}

// domain is the registry host as written in the name ("docker.io").
func (p parsedRef) domain() string { return reference.Domain(p.named) }

// path is the repository path inside the registry ("library/busybox").
func (p parsedRef) path() string { return reference.Path(p.named) }

func (p parsedRef) String() string {
	if p.digest != "" {
		return p.name() + "@" + p.digest
	}
	return p.tagRef()
}

// idFrom returns the "sha256:<hex>" id that ref spells out in full, if it
// is one ("sha256:<64 hex>" or 64 bare hex digits).
func idFrom(ref string) (string, bool) {
	h := strings.TrimPrefix(ref, "sha256:")
	if len(h) == 64 && isHex(h) {
		return "sha256:" + h, true
	}
	return "", false
}

// minPrefix is the shortest id prefix Resolve accepts; shorter hex strings
// are too likely to be meant as names.
const minPrefix = 4

// idPrefixFrom returns the hex prefix ref spells, if it can be an id prefix.
func idPrefixFrom(ref string) (string, bool) {
	h := strings.TrimPrefix(ref, "sha256:")
	if len(h) >= minPrefix && len(h) < 64 && isHex(h) {
		return h, true
	}
	return "", false
}
