// Command hdhomerun-peer reads one HDHomeRun device with github.com/mdlayher/hdhomerun, the
// library mdlayher/hdhomerun_exporter is built on, at the version that exporter pins, and prints
// what the library parsed as one JSON document on stdout.
//
// It exists so the test suite can check that our simulator speaks the protocol the way that
// library expects, and that our classic-mode /probe exports what the exporter would derive
// from the library's figures. It reads the device the way the exporter does: Model(), then
// ForEachTuner (which stops at the first tuner the device reports as not existing) and each
// tuner's Debug(). Extra arguments are raw Query() names, reported with the value or the error
// and whether the library classes it as IsNotExist.
//
// With -listen it serves GET /metrics?target=host:port instead, one probe of the target per
// request the way hdhomerun_exporter does (metrics.go), after printing the bound address on
// stdout.
//
// Usage: hdhomerun-peer [-timeout 5s] host:port [query ...]
//
//	hdhomerun-peer [-timeout 5s] -listen 127.0.0.1:0
//
// Loopback only: every address (the device's, the listener's) must be a literal 127.0.0.0/8 or
// ::1 address with an explicit port. It never discovers or broadcasts (the library's Discoverer
// is not used).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/mdlayher/hdhomerun"
)

// maxTuners bounds ForEachTuner: a device that never says "unknown getset variable" must not
// keep the peer looping.
const maxTuners = 64

var errTooManyTuners = errors.New("more than 64 tuners: stopped")

type tunerJSON struct {
	Index int                   `json:"index"`
	Debug *hdhomerun.TunerDebug `json:"debug"`
}

type queryJSON struct {
	Value    *string `json:"value"`
	Error    string  `json:"error,omitempty"`
	NotExist bool    `json:"not_exist"`
}

type report struct {
	Address    string               `json:"address"`
	Model      *string              `json:"model"`
	ModelError string               `json:"model_error,omitempty"`
	Tuners     []tunerJSON          `json:"tuners"`
	TunerError string               `json:"tuner_error,omitempty"`
	Queries    map[string]queryJSON `json:"queries"`
}

func loopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" {
		return fmt.Errorf("%q: give the port explicitly", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: only a literal loopback address is allowed", addr)
	}
	return nil
}

func main() {
	timeout := flag.Duration("timeout", 5*time.Second, "per-request timeout (write and read)")
	listen := flag.String("listen", "", "serve /metrics?target=host:port on this loopback host:port")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: hdhomerun-peer [-timeout 5s] host:port [query ...]")
		fmt.Fprintln(os.Stderr, "       hdhomerun-peer [-timeout 5s] -listen 127.0.0.1:0")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *listen != "" {
		if flag.NArg() != 0 {
			flag.Usage()
			os.Exit(2)
		}
		if err := serve(*listen, *timeout); err != nil {
			fmt.Fprintln(os.Stderr, "hdhomerun-peer:", err)
			os.Exit(2)
		}
		return
	}
	if flag.NArg() < 1 {
		flag.Usage()
		os.Exit(2)
	}
	addr := flag.Arg(0)
	if err := loopback(addr); err != nil {
		fmt.Fprintln(os.Stderr, "hdhomerun-peer:", err)
		os.Exit(2)
	}

	c, err := hdhomerun.Dial(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hdhomerun-peer: dial:", err)
		os.Exit(1)
	}
	defer c.Close()
	c.SetTimeout(*timeout)

	r := report{Address: addr, Tuners: []tunerJSON{}, Queries: map[string]queryJSON{}}
	if model, err := c.Model(); err != nil {
		r.ModelError = err.Error()
	} else {
		r.Model = &model
	}

	err = c.ForEachTuner(func(t *hdhomerun.Tuner) error {
		if t.Index >= maxTuners {
			return errTooManyTuners
		}
		d, err := t.Debug()
		if err != nil {
			return err
		}
		r.Tuners = append(r.Tuners, tunerJSON{Index: t.Index, Debug: d})
		return nil
	})
	if err != nil {
		r.TunerError = err.Error()
	}

	for _, q := range flag.Args()[1:] {
		v, err := c.Query(q)
		if err != nil {
			r.Queries[q] = queryJSON{Error: err.Error(), NotExist: hdhomerun.IsNotExist(err)}
			continue
		}
		s := string(v)
		r.Queries[q] = queryJSON{Value: &s}
	}

	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "hdhomerun-peer:", err)
		os.Exit(1)
	}
}
