package platform

import (
	"errors"
	"maps"
	"slices"
	"sync"
)

// osRouter is one system's half of a Router: it touches the system, and
// router, the half every system shares, decides when.
type osRouter interface {
	// apply makes cfg.Interface match cfg, which is valid.
	apply(cfg *Config) error
	// clear removes Warren's state from the named interface; one that
	// does not exist is clean.
	clear(name string) error
	// release frees what the osRouter holds. It is called once, after
	// the last clear.
	release()
}

// router is the Router over an osRouter: it validates, serialises, and
// remembers which interfaces it configured, so that Set(nil), Close and a
// move to another interface clear them.
type router struct {
	os osRouter

	// mu serialises Set and Close and guards the fields below. Unlike a
	// lock over plain data it is held across system calls, because what
	// it protects is the kernel state being read and then written; nothing
	// called under it calls back into the router.
	mu     sync.Mutex
	closed bool
	// ifaces are the interfaces Set has configured whose state has not
	// been removed since: where Set(nil) and Close must clean up.
	ifaces map[string]bool
}

func newRouter(os osRouter) *router {
	return &router{os: os, ifaces: make(map[string]bool)}
}

// Set implements Router. When cfg names another interface than the
// previous Set, the old one is cleared first: the kernel refuses a second
// route to a prefix (Linux: at the same metric; macOS: at all), so here
// adding first would fail.
func (r *router) Set(cfg *Config) error {
	if cfg != nil {
		if err := cfg.Validate(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	return r.set(cfg)
}

// set does Set's work; r.mu is held and the router is open.
func (r *router) set(cfg *Config) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(r.ifaces)) {
		if cfg != nil && name == cfg.Interface {
			continue
		}
		if err := r.os.clear(name); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(r.ifaces, name)
	}
	if cfg != nil {
		r.ifaces[cfg.Interface] = true
		errs = append(errs, r.os.apply(cfg))
	}
	return errors.Join(errs...)
}

// Close implements Router.
func (r *router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	err := r.set(nil)
	r.os.release()
	r.closed = true
	return err
}
