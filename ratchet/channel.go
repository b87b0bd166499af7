package ratchet

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"

	"github.com/talosgo/talos/contracts"
)

// A Channel sends and receives forward-secret messages with a peer or a
// group. Implementations are safe for concurrent use.
type Channel interface {
	// Send encrypts plaintext and hands it to the transport.
	Send(ctx context.Context, plaintext []byte) error
	// Receive returns the next authentic message, in arrival order.
	Receive(ctx context.Context) ([]byte, error)
}

// A Transport carries opaque messages between two endpoints. It may
// reorder, duplicate or drop them; a Channel copes with the first two.
// Implementations must be safe for one concurrent Send and Receive.
type Transport interface {
	Send(ctx context.Context, msg []byte) error
	Receive(ctx context.Context) ([]byte, error)
}

// ChannelConfig configures a SessionChannel. Its zero value keeps the
// session in memory only.
type ChannelConfig struct {
	// Store, Sealer and ID, when Store is set, make the channel save the
	// sealed session under ID after every Send and every delivered Receive,
	// conditional on the version it last saved (Version). Sealer and ID are
	// then required.
	Store  SessionStore
	Sealer Sealer
	ID     string
	// Version is the stored version the session was loaded at (0: the ID
	// does not exist yet).
	Version uint64

	// OnReject, if set, is called with each inbound message that is
	// dropped because it does not authenticate or parse (duplicates of
	// delivered messages are dropped silently). It must not block.
	OnReject func(err error)
}

// SessionChannel is a Channel over one Session and one Transport. It is
// safe for concurrent use. Duplicated messages are dropped; messages that
// arrive out of order are delivered when they arrive (the session keeps
// their keys, within its skipped-key bounds); messages that fail to
// authenticate are dropped and reported to OnReject.
type SessionChannel struct {
	cfg ChannelConfig
	t   Transport

	sendMu sync.Mutex // serializes Send so messages leave in encryption order

	mu      sync.Mutex // guards s, version, seen
	s       *Session
	version uint64
	seen    recentSet
}

var _ Channel = (*SessionChannel)(nil)

// NewChannel returns a channel that owns s: the caller must not use s
// directly afterwards.
func NewChannel(s *Session, t Transport, cfg ChannelConfig) (*SessionChannel, error) {
	if s == nil || t == nil {
		return nil, errors.New("ratchet: NewChannel needs a session and a transport")
	}
	if cfg.Store != nil && (cfg.Sealer == nil || cfg.ID == "") {
		return nil, errors.New("ratchet: ChannelConfig.Store requires Sealer and ID")
	}
	return &SessionChannel{cfg: cfg, t: t, s: s, version: cfg.Version, seen: newRecentSet(dedupWindow)}, nil
}

// Send implements Channel. When the channel persists its session, the
// state is saved before the message leaves; a save error (ErrConflict
// included) is returned and nothing is sent.
func (c *SessionChannel) Send(ctx context.Context, plaintext []byte) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	wire, err := c.s.Encrypt(plaintext)
	if err == nil {
		err = c.saveLocked(ctx)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.t.Send(ctx, wire)
}

// Receive implements Channel. It returns transport and storage errors, and
// ctx.Err() when ctx ends; it never returns for a bad inbound message. When
// the channel persists its session, a message is returned only after the
// state that consumed it was saved; if the save fails the message is not
// delivered and the session is rolled back (the transport must redeliver
// it). Acknowledge a message to its sender only after Receive returned it.
func (c *SessionChannel) Receive(ctx context.Context) ([]byte, error) {
	for {
		wire, err := c.t.Receive(ctx)
		if err != nil {
			return nil, err
		}
		pt, deliver, err := c.accept(ctx, wire)
		if err != nil {
			return nil, err
		}
		if deliver {
			return pt, nil
		}
	}
}

func (c *SessionChannel) accept(ctx context.Context, wire []byte) ([]byte, bool, error) {
	digest := sha256.Sum256(wire)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen.has(digest) {
		return nil, false, nil
	}
	var snapshot Session
	if c.cfg.Store != nil {
		snapshot = *c.s
		snapshot.skipped = append([]skippedKey(nil), c.s.skipped...)
	}
	pt, err := c.s.Decrypt(wire)
	if err != nil {
		if c.cfg.OnReject != nil {
			c.cfg.OnReject(err)
		}
		return nil, false, nil
	}
	if err := c.saveLocked(ctx); err != nil {
		// Not delivered: roll the session back, so that a redelivery of
		// this message by the transport decrypts once storage works.
		*c.s = snapshot
		clear(pt)
		return nil, false, err
	}
	c.seen.add(digest)
	return pt, true, nil
}

func (c *SessionChannel) saveLocked(ctx context.Context) error {
	if c.cfg.Store == nil {
		return nil
	}
	v, err := SaveSession(ctx, c.cfg.Store, c.cfg.Sealer, c.cfg.ID, c.version, c.s)
	if err != nil {
		return err
	}
	c.version = v
	return nil
}

// recentSet remembers the last n digests.
type recentSet struct {
	ring [][32]byte
	next int
	set  map[[32]byte]struct{}
}

func newRecentSet(n int) recentSet {
	return recentSet{ring: make([][32]byte, 0, n), set: make(map[[32]byte]struct{}, n)}
}

func (r *recentSet) has(d [32]byte) bool { _, ok := r.set[d]; return ok }

func (r *recentSet) add(d [32]byte) {
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, d)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = d
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[d] = struct{}{}
}

// MemTransport is one end of an in-memory, unbounded, in-order Transport
// pair made by NewMemPipe. It is safe for concurrent use.
type MemTransport struct {
	in   *memQueue
	out  *memQueue
	once sync.Once
}

var _ Transport = (*MemTransport)(nil)

type memQueue struct {
	mu     sync.Mutex // guards msgs and closed
	msgs   [][]byte
	closed bool
	ready  chan struct{} // has a value while msgs is non-empty or closed
}

func newMemQueue() *memQueue { return &memQueue{ready: make(chan struct{}, 1)} }

func (q *memQueue) signalLocked() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// NewMemPipe returns two connected in-memory transports.
func NewMemPipe() (a, b *MemTransport) {
	ab, ba := newMemQueue(), newMemQueue()
	return &MemTransport{in: ba, out: ab}, &MemTransport{in: ab, out: ba}
}

// ErrClosed is returned by a closed MemTransport.
var ErrClosed = contracts.NewSentinel(contracts.CodeTransportError, "ratchet: transport closed")

// Send queues a copy of msg for the other end.
func (m *MemTransport) Send(ctx context.Context, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q := m.out
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.msgs = append(q.msgs, append([]byte(nil), msg...))
	q.signalLocked()
	return nil
}

// Receive returns the next message from the other end, waiting for one
// until ctx ends.
func (m *MemTransport) Receive(ctx context.Context) ([]byte, error) {
	q := m.in
	for {
		q.mu.Lock()
		if len(q.msgs) > 0 {
			msg := q.msgs[0]
			q.msgs[0] = nil
			q.msgs = q.msgs[1:]
			if len(q.msgs) > 0 {
				q.signalLocked()
			}
			q.mu.Unlock()
			return msg, nil
		}
		if q.closed {
			q.signalLocked()
			q.mu.Unlock()
			return nil, ErrClosed
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close closes both directions; pending messages can still be received.
func (m *MemTransport) Close() error {
	m.once.Do(func() {
		for _, q := range []*memQueue{m.in, m.out} {
			q.mu.Lock()
			q.closed = true
			q.signalLocked()
			q.mu.Unlock()
		}
	})
	return nil
}
