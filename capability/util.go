package capability

import (
	"bytes"
	"encoding/json"
)

// jsonUnmarshal decodes raw into v with numbers kept exact.
func jsonUnmarshal(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}
