// Command talos is the Talos command-line tool: wallets, capability tokens,
// audit-log verification and a witness, all offline or as a client of a
// Talos service.
//
// Usage:
//
//	talos <command> [flags] [args]
//
// Commands:
//
//	keygen          create a wallet file (sealed with a passphrase, or plain)
//	did             print the DID, address and keys of a wallet or did:key
//	token issue     issue a capability token
//	token delegate  extend a delegation chain with a narrower token
//	token inspect   print a token or chain decoded
//	token verify    verify a token or chain against trusted issuers
//	audit verify    verify a tiled audit log (directory or URL)
//	audit proof     verify an inclusion proof offline
//	audit bundle verify  verify an evidence bundle offline
//	witness cosign  cosign a log's checkpoint after checking consistency
//	witness serve   serve the C2SP tlog-witness endpoint
//	authorize       as an agent: an attested POST /v1/authorize (exit 1 when denied)
//	admin …         a client of a server's admin API (see below)
//
// # Admin commands
//
//	admin bootstrap     make the wallet's DID the first owner (bootstrap credential)
//	admin recover       offline: a recovery file and a new one-time credential
//	admin whoami        the identity, role and permissions the server sees
//	admin session       mint a short-lived session token and the dashboard URL
//	admin session revoke  revoke the presented session (log out)
//	admin identities    list | get | set-role | remove   admin identities
//	admin principals    list | get | add | remove        agent principals
//	admin roles         list | get | put                 RBAC roles
//	admin bindings      list | get | put                 RBAC bindings
//	admin capabilities  list | get | issue | revoke      issued capabilities
//	admin revocations   list
//	admin budgets       list | get | set                 budgets and their usage
//	admin a2a           sessions | groups [ID]           A2A metadata ("admin sessions" too)
//	admin config        list | get | versions            configuration documents
//	admin stats         decision statistics over --window
//	admin watch         audit events live (Server-Sent Events)
//
// Every admin command takes --server URL (else $TALOS_SERVER, else
// http://127.0.0.1:8080) and a credential: --wallet FILE (else
// $TALOS_ADMIN_WALLET), an admin identity's wallet that signs each request
// (HTTP attestation, opcode "admin"), or --session TOKEN (else
// $TALOS_ADMIN_SESSION), a session minted by admin session; a flag wins
// over both variables, and of the two variables the session wins except
// for admin session, which must be signed. A server's
// refusal (4xx) exits 1 and prints the contract error code; a server
// failure (5xx) or an unreachable server exits 3. Lists print one page
// (--limit, --cursor) or every page (--all). admin watch prints one line
// per event (a table row, or with --json {"id":CURSOR,"event":EVENT}),
// reconnects after a dropped connection with Last-Event-ID so that no
// event is lost or repeated, and exits 0 on Ctrl-C. admin bootstrap reads
// the credential from --credential-file or $TALOS_BOOTSTRAP_CREDENTIAL
// (--credential works and warns). admin recover needs the master key
// ($TALOS_MASTER_KEY or DIR/master.key) and writes DIR/admin-recovery.json
// (0600), which the server honours once within 24 hours.
//
// Every command takes -h and --json. Flags come before positional
// arguments.
//
// # Exit codes
//
//	0  success
//	1  verification failed, or the input was rejected (bad signature,
//	   malformed token, tampered entry, split view, ...)
//	2  usage error (unknown command, bad or missing flags)
//	3  I/O or network error (file missing, server unreachable)
//	4  the wallet could not be opened (wrong passphrase, damaged file, no
//	   passphrase source)
//
// # Passphrases
//
// A sealed wallet's passphrase is read, in this order, from the file named
// by --passphrase-file, from the environment variable TALOS_PASSPHRASE, or
// from a prompt on the terminal (/dev/tty, echo off). Without any of them
// the command fails with exit code 4.
//
// # Security
//
//   - Seeds, passphrases and bearer credentials are never printed, in
//     text, --json or error output. Wallet files are written 0600 and
//     atomically; keygen refuses to overwrite one without --force, and
//     --plain warns on stderr.
//   - A sealed wallet that does not open says only "wrong passphrase or
//     damaged file": the two are indistinguishable by design.
//   - Every parser of outside bytes (wallet files, tokens, checkpoints,
//     tiles, entry bundles, proofs, bundles, state files) is bounded and
//     rejects bad input with a *contracts.Error; verification failures
//     exit 1, never 0. Anything not decidable offline (a read-only limit
//     without a tool registry) fails.
//   - audit verify trusts only the log key given on the command line: the
//     checkpoint is verified before any tile is used, tiles and entries
//     are compared with what they must be, and the state file is updated
//     only after a fully successful run. A split view or rollback prints
//     both signed checkpoints, which are evidence against the log.
//   - The --auth credential is sent as a bearer header to the log URL
//     only; Go's HTTP client drops it on redirects to another host.
//   - Admin session tokens and bootstrap or recovery credentials are sent
//     only as bearer headers to --server, never printed except the ones a
//     command exists to show once (admin session, admin recover).
//   - witness cosign and witness serve keep their memory in a state
//     file; a state file that cannot be read makes them refuse to cosign.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/talosgo/talos/contracts"
)

// Exit codes (see the package documentation).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
	exitIO     = 3
	exitWallet = 4
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is everything a command may touch besides the file system and the
// network: arguments are parsed by the command itself.
type env struct {
	// ctx ends long-running commands (witness serve).
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// tty opens the terminal for a passphrase prompt; nil means no terminal.
	tty func() (io.ReadWriteCloser, error)
	// stderrTTY reports whether stderr is a terminal (progress bars).
	stderrTTY bool
}

// cliError is an error with an exit code.
type cliError struct {
	code int
	msg  string
	err  error // optional cause, shown after msg
}

func (e *cliError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}

func (e *cliError) Unwrap() error { return e.err }

func failf(code int, format string, a ...any) error {
	return &cliError{code: code, msg: fmt.Sprintf(format, a...)}
}

func wrap(code int, msg string, err error) error {
	return &cliError{code: code, msg: msg, err: err}
}

// usageError is a usage mistake; the command's usage is printed after it.
func usageError(format string, a ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, a...)}
}

// command is one subcommand.
type command struct {
	name    string // "token issue"
	summary string
	run     func(e *env, args []string) error
}

func commands() []command {
	cmds := []command{
		{"keygen", "create a wallet file (sealed with a passphrase, or --plain)", cmdKeygen},
		{"did", "print the DID, address and keys of a wallet or a did:key", cmdDID},
		{"token issue", "issue a capability token from an issuer wallet", cmdTokenIssue},
		{"token delegate", "extend a delegation chain with a narrower token", cmdTokenDelegate},
		{"token inspect", "print a token or chain decoded (verifies nothing)", cmdTokenInspect},
		{"token verify", "verify a token or chain against trusted issuers", cmdTokenVerify},
		{"audit verify", "verify a tiled audit log (directory or URL): checkpoint, consistency, entries, tree", cmdAuditVerify},
		{"audit proof", "verify an inclusion proof offline against a checkpoint", cmdAuditProof},
		{"audit bundle verify", "verify an evidence bundle offline", cmdAuditBundleVerify},
		{"witness cosign", "cosign a log's checkpoint after checking consistency with the last one", cmdWitnessCosign},
		{"witness serve", "serve the C2SP tlog-witness add-checkpoint endpoint", cmdWitnessServe},
		{"authorize", "as an agent: ask a server for a decision (attested POST /v1/authorize)", cmdAuthorize},
	}
	return append(cmds, adminCommands()...)
}

const exitCodesHelp = `Exit codes: 0 ok, 1 verification failed or input rejected, 2 usage error,
3 I/O or network error, 4 wallet could not be opened.
`

func topUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: talos <command> [flags] [args]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-26s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun talos <command> -h for a command's flags. Every command takes --json.\n")
	fmt.Fprint(w, exitCodesHelp)
}

// run is the whole program: it parses args, runs one command and returns
// the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// runContext is run with a context that stops servers.
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, tty: openTTY, stderrTTY: isTerminal(stderr)}
	return e.run(args)
}

func (e *env) run(args []string) int {
	if len(args) == 0 {
		topUsage(e.stderr)
		return exitUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		topUsage(e.stdout)
		return exitOK
	}
	// Longest match: "audit bundle verify" before "audit".
	cmds := commands()
	sort.SliceStable(cmds, func(i, j int) bool { return len(cmds[i].name) > len(cmds[j].name) })
	for _, c := range cmds {
		words := strings.Fields(c.name)
		if len(args) < len(words) || strings.Join(args[:len(words)], " ") != c.name {
			continue
		}
		err := c.run(e, args[len(words):])
		return e.finish(err)
	}
	// A group name alone ("talos token"), or an unknown command.
	// The longest group the arguments name ("admin identities" before "admin").
	for n := len(args); n > 0; n-- {
		group := strings.Join(args[:n], " ")
		var sub []string
		for _, c := range commands() {
			if strings.HasPrefix(c.name, group+" ") {
				sub = append(sub, c.name)
			}
		}
		if len(sub) > 0 {
			fmt.Fprintf(e.stderr, "talos %s: need a subcommand: %s\n", group, strings.Join(sub, ", "))
			return exitUsage
		}
	}
	fmt.Fprintf(e.stderr, "talos: unknown command %q\n\n", args[0])
	topUsage(e.stderr)
	return exitUsage
}

// finish reports err and returns the exit code.
func (e *env) finish(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitFailed
	var ce *cliError
	if errors.As(err, &ce) {
		code = ce.code
	}
	fmt.Fprintln(e.stderr, "talos: "+err.Error())
	return code
}

// newFlags returns a command's flag set, with --json; -h and --help are
// flag's own.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("talos "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.Bool("json", false, "print machine-readable JSON on stdout")
	return fs
}

// parse parses args; on -h it prints the usage on stdout and returns
// flag.ErrHelp; on a mistake it prints it with the usage on stderr.
func (e *env) parse(fs *flag.FlagSet, synopsis string, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(e.stdout, fs, synopsis)
		return flag.ErrHelp
	}
	if err != nil {
		printUsage(e.stderr, fs, synopsis)
		return usageError("%v", err)
	}
	return nil
}

func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "Usage: %s\n\n", synopsis)
	fs.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		name, use := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "  --%s%s\n    \t%s%s\n", f.Name, name, use, def)
	})
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, "\n"+exitCodesHelp)
}

func jsonOut(fs *flag.FlagSet) bool {
	return fs.Lookup("json").Value.String() == "true"
}

// emit prints v as indented JSON when asJSON, else calls text.
func (e *env) emit(asJSON bool, v any, text func(w io.Writer)) error {
	if !asJSON {
		text(e.stdout)
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return wrap(exitIO, "cannot encode output", err)
	}
	_, err = e.stdout.Write(append(b, '\n'))
	return err
}

// failJSON prints a failure object on stdout for --json callers, and
// returns err unchanged so the exit code and the stderr message follow.
func (e *env) failJSON(asJSON bool, err error, extra map[string]any) error {
	if !asJSON || err == nil {
		return err
	}
	out := map[string]any{"ok": false, "error": err.Error()}
	if c := contracts.CodeOf(err); c != "" {
		out["code"] = c
	}
	for k, v := range extra {
		out[k] = v
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	e.stdout.Write(append(b, '\n'))
	return err
}

// readInput reads a positional argument naming a file, "-" or nothing for
// stdin, bounded by limit.
func (e *env) readInput(arg string, limit int64) ([]byte, error) {
	var r io.Reader
	if arg == "" || arg == "-" {
		r = e.stdin
		arg = "stdin"
	} else {
		f, err := os.Open(arg)
		if err != nil {
			return nil, wrap(exitIO, "cannot read input", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, wrap(exitIO, "cannot read "+arg, err)
	}
	if int64(len(b)) > limit {
		return nil, failf(exitFailed, "%s: input larger than %d bytes", arg, limit)
	}
	return b, nil
}

// oneArg returns the single optional positional argument.
func oneArg(fs *flag.FlagSet) (string, error) {
	switch fs.NArg() {
	case 0:
		return "", nil
	case 1:
		return fs.Arg(0), nil
	}
	return "", usageError("too many arguments: %s", strings.Join(fs.Args(), " "))
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
