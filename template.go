package wrenn

import (
	"regexp"
	"strings"
)

// templateName is what a snapshot template may be called: it becomes a
// directory name, so no separators, no dot-only names, nothing hidden.
var templateName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidateTemplateName checks a snapshot template name.
func ValidateTemplateName(name string) error {
	if !templateName.MatchString(name) || strings.Contains(name, "..") {
		return Errorf(EInvalid,
			"name must be 1-63 characters of letters, digits, '.', '_' or '-', start with a letter or digit and not contain '..'")
	}
	return nil
}
