package notify

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// A Message says that documents of Kind changed and that Version is the
// kind's counter after the change.
type Message struct {
	Kind    string
	Version int64
}

// String returns the message's wire text, "v1 <kind> <version>".
func (m Message) String() string { return "v1 " + m.Kind + " " + strconv.FormatInt(m.Version, 10) }

// MaxKindLen is the longest kind name: room for a family, a document
// kind and a document name ("config.<kind>:<name>", 64 bytes each).
const MaxKindLen = 160

var kindRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]*$`)

// ValidKind reports whether kind is a kind name: 1 to 160 of a-z, 0-9 and
// ". _ : -", starting with a letter or digit.
func ValidKind(kind string) bool { return len(kind) <= MaxKindLen && kindRE.MatchString(kind) }

// ParseMessage parses a message's wire text. Anything but "v1", a valid
// kind and a positive decimal version separated by single spaces is a
// TALOS_INVALID_INPUT error.
func ParseMessage(s string) (Message, error) {
	bad := func(why string) (Message, error) {
		return Message{}, contracts.New(contracts.CodeInvalidInput, "notify: bad message: "+why)
	}
	if len(s) > 3+MaxKindLen+1+20 {
		return bad("too long")
	}
	parts := strings.Split(s, " ")
	if len(parts) != 3 || parts[0] != "v1" {
		return bad("not v1 <kind> <version>")
	}
	if !ValidKind(parts[1]) {
		return bad("invalid kind")
	}
	v := parts[2]
	if v == "" || v[0] < '1' || v[0] > '9' {
		return bad("invalid version")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return bad("invalid version")
	}
	return Message{Kind: parts[1], Version: n}, nil
}

// A Transport is a shared store that counts versions per kind and carries
// messages between the processes sharing it ([Redis], [Postgres]).
type Transport interface {
	// Publish bumps kind's version and sends the message naming the new
	// version to every subscriber; it returns the new version.
	Publish(ctx context.Context, kind string) (int64, error)
	// Versions reads every kind's current version.
	Versions(ctx context.Context) (map[string]int64, error)
	// Listen subscribes, calls ready once the subscription is in place,
	// then calls deliver for every message until ctx ends (nil) or the
	// connection fails (the error).
	Listen(ctx context.Context, ready func(), deliver func(Message)) error
}

// Config configures a [Bus].
type Config struct {
	// Transport is the shared store. Required.
	Transport Transport
	// Apply reloads the documents of kind. Required. It runs in the Bus's
	// goroutine, one call at a time; an error leaves the kind pending and
	// the call is made again after the next version read.
	Apply func(ctx context.Context, kind string) error
	// Poll is the period of the version read that catches a missed
	// message (1 s when zero).
	Poll time.Duration
	// OnError, if set, is told about transport and Apply failures.
	OnError func(error)
}

// A Bus publishes changes and applies the changes of every process sharing
// its transport (including its own). See the package documentation.
type Bus struct {
	cfg  Config
	kick chan struct{} // work pending for the applier
	poke chan struct{} // read the versions now

	mu       sync.Mutex
	want     map[string]int64 // newest version seen per kind
	applied  map[string]int64 // version applied per kind
	lastRead time.Time        // last successful version read
	listen   bool             // a subscription is in place
}

// New checks cfg and returns a Bus; it does nothing until [Bus.Run].
func New(cfg Config) (*Bus, error) {
	if cfg.Transport == nil || cfg.Apply == nil {
		return nil, errors.New("notify: Transport and Apply are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	return &Bus{
		cfg: cfg, kick: make(chan struct{}, 1), poke: make(chan struct{}, 1),
		want: map[string]int64{}, applied: map[string]int64{},
	}, nil
}

// Publish records a change of kind and tells every process sharing the
// transport, this one included. It returns the kind's new version.
func (b *Bus) Publish(ctx context.Context, kind string) (int64, error) {
	if !ValidKind(kind) {
		return 0, contracts.New(contracts.CodeInvalidInput, "notify: invalid kind")
	}
	return b.cfg.Transport.Publish(ctx, kind)
}

// Applied returns the version of kind applied last (0: none yet).
func (b *Bus) Applied(kind string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.applied[kind]
}

// Status reports whether a subscription is in place and when the versions
// were last read successfully (zero: never).
func (b *Bus) Status() (subscribed bool, lastRead time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.listen, b.lastRead
}

// Run subscribes, reads the versions every Poll and applies the changes
// until ctx ends; it then returns nil. A failed subscription is made again
// after a short back-off (100 ms doubling to 2 s).
func (b *Bus) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); b.subscribe(ctx) }()
	go func() { defer wg.Done(); b.poll(ctx) }()
	go func() { defer wg.Done(); b.apply(ctx) }()
	wg.Wait()
	return nil
}

func (b *Bus) fail(err error) {
	if err != nil && b.cfg.OnError != nil {
		b.cfg.OnError(err)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// note records that kind is at version v.
func (b *Bus) note(kind string, v int64) {
	if !ValidKind(kind) {
		return
	}
	b.mu.Lock()
	newer := v > b.want[kind]
	if newer {
		b.want[kind] = v
	}
	b.mu.Unlock()
	if newer {
		signal(b.kick)
	}
}

func (b *Bus) subscribe(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := b.cfg.Transport.Listen(ctx, func() {
			b.mu.Lock()
			b.listen = true
			b.mu.Unlock()
			backoff = 100 * time.Millisecond
			signal(b.poke) // catch up on what was sent while not subscribed
		}, func(m Message) { b.note(m.Kind, m.Version) })
		b.mu.Lock()
		b.listen = false
		b.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		b.fail(err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (b *Bus) poll(ctx context.Context) {
	t := time.NewTicker(b.cfg.Poll)
	defer t.Stop()
	for {
		vs, err := b.cfg.Transport.Versions(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			b.fail(err)
		} else {
			b.mu.Lock()
			b.lastRead = time.Now()
			b.mu.Unlock()
			for k, v := range vs {
				b.note(k, v)
			}
			signal(b.kick) // retries a failed Apply
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.poke:
		}
	}
}

func (b *Bus) apply(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		for {
			kind, v, ok := b.pending()
			if !ok || ctx.Err() != nil {
				break
			}
			if err := b.cfg.Apply(ctx, kind); err != nil {
				b.fail(err)
				break // the next read kicks again
			}
			b.mu.Lock()
			b.applied[kind] = max(b.applied[kind], v)
			b.mu.Unlock()
		}
	}
}

// pending returns a kind whose newest version is not applied yet.
func (b *Bus) pending() (string, int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, v := range b.want {
		if v > b.applied[k] {
			return k, v, true
		}
	}
	return "", 0, false
}
