package budget

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/talosgo/talos/contracts"
)

const nonceHexLen = 32

// NewReservationID returns a fresh reservation ID in group: the group name,
// '~', and 32 lower-case hex digits of randomness. The group is part of the
// ID so that Commit and Release can find the reservation's scope group (its
// Redis Cluster slot) without another lookup.
func NewReservationID(group string) (string, error) {
	if err := ValidateID("group", group); err != nil {
		return "", err
	}
	var b [nonceHexLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", contracts.Wrap(contracts.CodeInternal, "budget: reading randomness", err)
	}
	return group + "~" + hex.EncodeToString(b[:]), nil
}

// ParseReservationID splits a reservation ID (outside input: it may come
// back from a client) into its group and its nonce (the 32 hex digits). A
// malformed ID is a TALOS_INVALID_INPUT error; an accepted ID is exactly
// group + "~" + nonce.
func ParseReservationID(id string) (group, nonce string, err error) {
	if len(id) > MaxReservationIDLen {
		return "", "", invalid("reservation ID too long")
	}
	i := strings.LastIndexByte(id, '~')
	if i < 0 {
		return "", "", invalid("malformed reservation ID")
	}
	group, nonce = id[:i], id[i+1:]
	if !validID(group) {
		return "", "", invalid("malformed reservation ID")
	}
	if len(nonce) != nonceHexLen {
		return "", "", invalid("malformed reservation ID")
	}
	for j := 0; j < len(nonce); j++ {
		c := nonce[j]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", "", invalid("malformed reservation ID")
		}
	}
	return group, nonce, nil
}
