package a2a

import (
	"net/http"

	"errors"
	"github.com/talosgo/talos"

	"github.com/talosgo/talos/contracts"
)

func asContracts(err error, ce **contracts.Error) bool { return errors.As(err, ce) }

func talosWriteErr(w http.ResponseWriter, r *http.Request, err error) { talos.WriteError(w, r, err) }
