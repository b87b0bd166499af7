package contracts

// ValidateDecodedForTest validates an already decoded document (as produced
// by encoding/json with UseNumber) against the schema called name, skipping
// the input-rule pass. The external schema tests use it to compare schema
// semantics on many generated documents cheaply.
func ValidateDecodedForTest(name string, v any) error {
	e, ok := schemaRegistryOnce().entries[name]
	if !ok {
		return ErrUnknownSchema
	}
	sch, err := e.compiled()
	if err != nil {
		return err
	}
	return sch.Validate(v)
}
