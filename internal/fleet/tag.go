package fleet

import (
	"context"

	"github.com/wrennhq/wrenn"
)

// validTag checks a tag: 1 to maxLabelLen letters, digits and . _ : = -,
// starting with a letter or digit, so it is safe in a URL path segment
// and as a placement constraint (key=value reads well).
func validTag(tag string) error {
	if tag == "" || len(tag) > maxLabelLen {
		return wrenn.Errorf(wrenn.EInvalid, "tag must be 1 to %d characters", maxLabelLen)
	}
	for i, r := range tag {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || !(r == '.' || r == '_' || r == ':' || r == '=' || r == '-')) {
			return wrenn.Errorf(wrenn.EInvalid, "tag must be letters, digits and . _ : = -, starting with a letter or digit")
		}
	}
	return nil
}

// Tags returns the tags of a host the caller sees, sorted.
func (s *Service) Tags(ctx context.Context, c Caller, id string) ([]string, error) {
	a, err := s.actor(ctx, c)
	if err != nil {
		return nil, err
	}
	h, err := s.host(ctx, a, id, false)
	if err != nil {
		return nil, err
	}
	return h.Tags, nil
}

// AddTag tags a host (at most MaxTags); a tag it has is no change.
func (s *Service) AddTag(ctx context.Context, c Caller, id, tag string) error {
	if err := validTag(tag); err != nil {
		return err
	}
	a, err := s.actor(ctx, c)
	if err != nil {
		return err
	}
	if _, err := s.host(ctx, a, id, true); err != nil {
		return err
	}
	return s.hosts.AddHostTag(ctx, id, tag, MaxTags, s.now())
}

// RemoveTag removes a tag from a host; a tag it does not have is no change.
func (s *Service) RemoveTag(ctx context.Context, c Caller, id, tag string) error {
	if err := validTag(tag); err != nil {
		return err
	}
	a, err := s.actor(ctx, c)
	if err != nil {
		return err
	}
	if _, err := s.host(ctx, a, id, true); err != nil {
		return err
	}
	return s.hosts.RemoveHostTag(ctx, id, tag, s.now())
}
