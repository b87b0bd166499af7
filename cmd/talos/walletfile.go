package main

import (
	"bytes"
	"crypto/rand"
	"strconv"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// The wallet file, version talos.wallet.v1, is one canonical JSON object
// (RFC 8785) followed by a newline. A sealed wallet:
//
//	{"did":"did:key:z…","kdf":{"log_n":17,"name":"scrypt","p":1,"r":8,"salt":"<b64u 16>"},
//	 "name":"…","nonce":"<b64u 24>","sealed":"<b64u 48>","version":"talos.wallet.v1"}
//
// sealed = XChaCha20-Poly1305(key, nonce, seed, aad) with key =
// scrypt(passphrase, salt, 2^log_n, r, p, 32) and aad binding the version,
// DID, name and KDF parameters, so none of them can be swapped. A plain
// wallet holds "seed" (strict base64url of the 32-byte seed) instead of
// kdf, nonce and sealed. "name" is omitted when empty. Exactly one
// encoding of each wallet is accepted (parse ⇒ re-encode equals input).
const (
	walletVersion  = "talos.wallet.v1"
	maxWalletFile  = 4 << 10
	defaultLogN    = 17 // 128 MiB, about 0.3 s
	minLogN        = 14
	maxLogN        = 20
	scryptR        = 8
	scryptP        = 1
	walletSaltSize = 16
)

type walletKDF struct {
	LogN int    `json:"log_n"`
	Name string `json:"name"`
	P    int    `json:"p"`
	R    int    `json:"r"`
	Salt string `json:"salt"`
}

type walletFile struct {
	DID     string     `json:"did"`
	KDF     *walletKDF `json:"kdf,omitempty"`
	Name    string     `json:"name,omitempty"`
	Nonce   string     `json:"nonce,omitempty"`
	Sealed  string     `json:"sealed,omitempty"`
	Seed    string     `json:"seed,omitempty"`
	Version string     `json:"version"`
}

// Sealed reports whether the wallet needs a passphrase.
func (f *walletFile) isSealed() bool { return f.KDF != nil }

func badWallet(msg string) error {
	return contracts.New(contracts.CodeInvalidInput, "wallet file: "+msg)
}

// parseWalletFile reads a wallet file without opening it. Errors are
// *contracts.Error (TALOS_INVALID_INPUT) and never echo secret members.
func parseWalletFile(b []byte) (*walletFile, error) {
	if len(b) > maxWalletFile {
		return nil, badWallet("too large")
	}
	body, ok := bytes.CutSuffix(b, []byte("\n"))
	if !ok {
		return nil, badWallet("must end with a newline")
	}
	var f walletFile
	if err := contracts.UnmarshalStrict(body, &f); err != nil {
		return nil, badWallet("not a wallet object")
	}
	if f.Version != walletVersion {
		return nil, badWallet("unknown version")
	}
	if _, err := identity.ParseDID(f.DID); err != nil {
		return nil, badWallet("bad did")
	}
	if f.isSealed() {
		k := f.KDF
		if f.Seed != "" || k.Name != "scrypt" || k.LogN < minLogN || k.LogN > maxLogN || k.R != scryptR || k.P != scryptP {
			return nil, badWallet("unsupported or out-of-range key derivation")
		}
		if s, err := contracts.DecodeBase64URL(k.Salt); err != nil || len(s) != walletSaltSize {
			return nil, badWallet("bad salt")
		}
		if n, err := contracts.DecodeBase64URL(f.Nonce); err != nil || len(n) != chacha20poly1305.NonceSizeX {
			return nil, badWallet("bad nonce")
		}
		if c, err := contracts.DecodeBase64URL(f.Sealed); err != nil || len(c) != 32+chacha20poly1305.Overhead {
			return nil, badWallet("bad sealed seed")
		}
	} else {
		if f.Nonce != "" || f.Sealed != "" {
			return nil, badWallet("plain wallet with sealing members")
		}
		if s, err := contracts.DecodeBase64URL(f.Seed); err != nil || len(s) != 32 {
			return nil, badWallet("bad seed")
		}
	}
	again, err := f.encode()
	if err != nil || !bytes.Equal(again, b) {
		return nil, badWallet("not in canonical form")
	}
	return &f, nil
}

func (f *walletFile) encode() ([]byte, error) {
	b, err := contracts.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (f *walletFile) aad() []byte {
	k := f.KDF
	return []byte(walletVersion + "\x00" + f.DID + "\x00" + f.Name + "\x00" + k.Name + " " +
		strconv.Itoa(k.LogN) + " " + strconv.Itoa(k.R) + " " + strconv.Itoa(k.P) + " " + k.Salt)
}

func walletKey(pass []byte, k *walletKDF) ([]byte, error) {
	salt, err := contracts.DecodeBase64URL(k.Salt)
	if err != nil {
		return nil, err
	}
	return scrypt.Key(pass, salt, 1<<k.LogN, k.R, k.P, chacha20poly1305.KeySize)
}

// sealWallet returns the file of w; pass nil writes it plain.
func sealWallet(w *identity.Wallet, pass []byte, logN int) ([]byte, error) {
	text, err := w.MarshalPrivateText()
	if err != nil {
		return nil, err
	}
	defer clear(text)
	seed, err := contracts.DecodeBase64URL(string(bytes.TrimPrefix(text, []byte("talos-wallet-seed:"))))
	if err != nil || len(seed) != 32 {
		return nil, contracts.New(contracts.CodeInternal, "wallet: unexpected private text form")
	}
	defer clear(seed)
	f := &walletFile{DID: w.DID().String(), Name: w.Name(), Version: walletVersion}
	if pass == nil {
		f.Seed = contracts.EncodeBase64URL(seed)
		return f.encode()
	}
	if logN < minLogN || logN > maxLogN {
		return nil, contracts.New(contracts.CodeInvalidInput, "wallet: scrypt log_n out of range")
	}
	salt := make([]byte, walletSaltSize)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	rand.Read(salt)
	rand.Read(nonce)
	f.KDF = &walletKDF{LogN: logN, Name: "scrypt", P: scryptP, R: scryptR, Salt: contracts.EncodeBase64URL(salt)}
	key, err := walletKey(pass, f.KDF)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	f.Nonce = contracts.EncodeBase64URL(nonce)
	f.Sealed = contracts.EncodeBase64URL(aead.Seal(nil, nonce, seed, f.aad()))
	return f.encode()
}

// errWrongPassphrase is the single error of a sealed wallet that does not
// open: wrong passphrase or a damaged file look the same.
var errWrongPassphrase = contracts.New(contracts.CodeCryptoError, "wallet: wrong passphrase or damaged file")

// open returns the wallet; pass is ignored for a plain wallet.
func (f *walletFile) open(pass []byte) (*identity.Wallet, error) {
	var seed []byte
	if f.isSealed() {
		key, err := walletKey(pass, f.KDF)
		if err != nil {
			return nil, errWrongPassphrase
		}
		defer clear(key)
		aead, err := chacha20poly1305.NewX(key)
		if err != nil {
			return nil, errWrongPassphrase
		}
		nonce, _ := contracts.DecodeBase64URL(f.Nonce)
		ct, _ := contracts.DecodeBase64URL(f.Sealed)
		if seed, err = aead.Open(nil, nonce, ct, f.aad()); err != nil {
			return nil, errWrongPassphrase
		}
	} else {
		var err error
		if seed, err = contracts.DecodeBase64URL(f.Seed); err != nil {
			return nil, badWallet("bad seed")
		}
	}
	defer clear(seed)
	w, err := identity.WalletFromSeed(seed)
	if err != nil {
		return nil, badWallet("bad seed")
	}
	if w.DID().String() != f.DID {
		return nil, badWallet("seed does not match the did")
	}
	if f.Name != "" {
		w = w.WithName(f.Name)
	}
	return w, nil
}
