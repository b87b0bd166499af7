package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// passEnv is the environment variable scripts set to a wallet passphrase.
const passEnv = "TALOS_PASSPHRASE"

const maxPassphrase = 1 << 10

// passFlags are the passphrase sources of a command that opens or writes
// a sealed wallet.
type passFlags struct {
	file string
}

func (p *passFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.file, "passphrase-file", "", "read the wallet passphrase from this file (first line); else $"+passEnv+", else a terminal prompt")
}

// passphrase returns the passphrase from the file, the environment or
// the terminal. confirm asks twice on a terminal.
func (e *env) passphrase(p passFlags, prompt string, confirm bool) ([]byte, error) {
	if p.file != "" {
		b, err := os.ReadFile(p.file)
		if err != nil {
			return nil, wrap(exitWallet, "cannot read the passphrase file", err)
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		return checkPass(line)
	}
	if v := e.getenv(passEnv); v != "" {
		return checkPass([]byte(v))
	}
	if e.tty == nil {
		return nil, failf(exitWallet, "no passphrase: use --passphrase-file, $%s or a terminal", passEnv)
	}
	t, err := e.tty()
	if err != nil {
		return nil, failf(exitWallet, "no passphrase: use --passphrase-file, $%s or a terminal (%v)", passEnv, err)
	}
	defer t.Close()
	r := bufio.NewReader(io.LimitReader(t, 2*maxPassphrase))
	read := func(p string) ([]byte, error) {
		fmt.Fprint(t, p)
		line, err := r.ReadBytes('\n')
		if err != nil && len(line) == 0 {
			return nil, wrap(exitWallet, "cannot read the passphrase", err)
		}
		fmt.Fprint(t, "\n")
		return bytes.TrimRight(line, "\r\n"), nil
	}
	pass, err := read(prompt)
	if err != nil {
		return nil, err
	}
	if confirm {
		again, err := read("Repeat passphrase: ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pass, again) {
			return nil, failf(exitWallet, "the passphrases differ")
		}
	}
	return checkPass(pass)
}

func checkPass(p []byte) ([]byte, error) {
	if len(p) == 0 {
		return nil, failf(exitWallet, "empty passphrase")
	}
	if len(p) > maxPassphrase {
		return nil, failf(exitWallet, "passphrase longer than %d bytes", maxPassphrase)
	}
	return p, nil
}

// loadWallet reads and opens a wallet file.
func (e *env) loadWallet(path string, p passFlags) (*identity.Wallet, error) {
	if path == "" {
		return nil, usageError("--wallet is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, wrap(exitIO, "cannot read the wallet", err)
	}
	f, err := parseWalletFile(b)
	if err != nil {
		return nil, wrap(exitWallet, path, err)
	}
	var pass []byte
	if f.isSealed() {
		if pass, err = e.passphrase(p, "Passphrase for "+path+": ", false); err != nil {
			return nil, err
		}
		defer clear(pass)
	}
	w, err := f.open(pass)
	if err != nil {
		return nil, wrap(exitWallet, path, err)
	}
	return w, nil
}

func cmdKeygen(e *env, args []string) error {
	const syn = "talos keygen [--out FILE] [--name NAME] [--plain] [--passphrase-file FILE] [--force]"
	fs := newFlags("keygen")
	out := fs.String("out", "wallet.json", "the wallet file to write (mode 0600)")
	name := fs.String("name", "", "a human-readable name stored with the key")
	plain := fs.Bool("plain", false, "write the seed unsealed (anyone who can read the file holds the key)")
	force := fs.Bool("force", false, "overwrite an existing file")
	logN := fs.Int("scrypt-log-n", defaultLogN, fmt.Sprintf("scrypt cost: N = 2^log_n (%d to %d)", minLogN, maxLogN))
	var p passFlags
	p.register(fs)
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("keygen takes no arguments")
	}
	if *logN < minLogN || *logN > maxLogN {
		return usageError("--scrypt-log-n must be %d to %d", minLogN, maxLogN)
	}
	if *plain && p.file != "" {
		return usageError("--plain and --passphrase-file exclude each other")
	}
	if _, err := os.Stat(*out); err == nil && !*force {
		return failf(exitIO, "%s exists (use --force to overwrite)", *out)
	}
	w, err := identity.GenerateWallet(*name)
	if err != nil {
		return wrap(exitFailed, "cannot generate a key", err)
	}
	var pass []byte
	if !*plain {
		if pass, err = e.passphrase(p, "New passphrase: ", true); err != nil {
			return err
		}
		defer clear(pass)
	}
	data, err := sealWallet(w, pass, *logN)
	if err != nil {
		return wrap(exitFailed, "cannot seal the wallet", err)
	}
	if err := writeFileAtomic(*out, data, 0o600); err != nil {
		return wrap(exitIO, "cannot write the wallet", err)
	}
	if *plain {
		fmt.Fprintf(e.stderr, "talos: warning: %s holds the private key unsealed; protect the file\n", *out)
	}
	return e.emit(jsonOut(fs), map[string]any{"ok": true, "did": w.DID().String(), "address": w.Address(), "file": *out, "sealed": !*plain}, func(o io.Writer) {
		fmt.Fprintln(o, w.DID().String())
	})
}

func cmdDID(e *env, args []string) error {
	const syn = "talos did [--origin ORIGIN] [--check] [--passphrase-file FILE] (WALLET-FILE | did:key:…)"
	fs := newFlags("did")
	origin := fs.String("origin", "", "also print the C2SP verifier key of a log (or witness) with this origin signed by the key")
	check := fs.Bool("check", false, "open a sealed wallet to prove the passphrase and that the seed matches the stored DID")
	var p passFlags
	p.register(fs)
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	arg, err := oneArg(fs)
	if err != nil {
		return err
	}
	if arg == "" {
		return usageError("need a wallet file or a did:key")
	}
	var did identity.DID
	name := ""
	if strings.HasPrefix(arg, "did:") {
		if did, err = identity.ParseDID(arg); err != nil {
			return wrap(exitFailed, "bad DID", err)
		}
	} else {
		b, err := os.ReadFile(arg)
		if err != nil {
			return wrap(exitIO, "cannot read the wallet", err)
		}
		f, err := parseWalletFile(b)
		if err != nil {
			return wrap(exitWallet, arg, err)
		}
		if *check {
			if _, err := e.loadWallet(arg, p); err != nil {
				return err
			}
		}
		did, _ = identity.ParseDID(f.DID)
		name = f.Name
	}
	pub := did.PublicKey()
	sum := sha256Hex(pub)
	res := map[string]any{"ok": true, "did": did.String(), "address": sum, "public_key": contracts.EncodeBase64URL(pub)}
	if name != "" {
		res["name"] = name
	}
	var vkey string
	if *origin != "" {
		if vkey, err = audit.VerifierKey(*origin, pub); err != nil {
			return usageError("bad --origin: %v", err)
		}
		res["verifier_key"] = vkey
	}
	return e.emit(jsonOut(fs), res, func(o io.Writer) {
		fmt.Fprintln(o, "did:         ", did.String())
		fmt.Fprintln(o, "address:     ", sum)
		fmt.Fprintln(o, "public key:  ", contracts.EncodeBase64URL(pub))
		if name != "" {
			fmt.Fprintln(o, "name:        ", name)
		}
		if vkey != "" {
			fmt.Fprintln(o, "verifier key:", vkey)
		}
	})
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
