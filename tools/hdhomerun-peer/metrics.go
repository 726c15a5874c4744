package main

// The -listen mode: a /metrics?target=host:port page per probe, doing what
// mdlayher/hdhomerun_exporter does for each scrape, so its cost and its series can be compared
// with our classic /probe. Per request: dial the target, ask its model and features, read each
// tuner's debug through ForEachTuner (which reads a tuner's debug to see that it exists, then
// the callback reads it again: twice per tuner, as the exporter does), and serve the figures as
// gauges on a fresh client_golang registry.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/mdlayher/hdhomerun"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var (
	deviceInfo = prometheus.NewDesc("hdhomerun_device_info",
		"Metadata about an HDHomeRun device.", []string{"model"}, nil)
	tunerInfo = prometheus.NewDesc("hdhomerun_tuner_info",
		"Metadata about an HDHomeRun device's tuner.", []string{"tuner", "channel", "lock"}, nil)
	signalStrength = prometheus.NewDesc("hdhomerun_tuner_signal_strength_ratio",
		"The current signal strength of a tuner, as a ratio.", []string{"tuner"}, nil)
	signalToNoise = prometheus.NewDesc("hdhomerun_tuner_signal_to_noise_ratio",
		"The current signal to noise quality of a tuner, as a ratio.", []string{"tuner"}, nil)
	symbolError = prometheus.NewDesc("hdhomerun_tuner_symbol_error_ratio",
		"The current symbol error quality of a tuner, as a ratio.", []string{"tuner"}, nil)
	cardBytes = prometheus.NewDesc("hdhomerun_cablecard_bytes_per_second",
		"The CableCARD's current bytes per second.", nil, nil)
	cardOverflow = prometheus.NewDesc("hdhomerun_cablecard_overflow",
		"The CableCARD's overflow count.", nil, nil)
	cardResync = prometheus.NewDesc("hdhomerun_cablecard_resync",
		"The CableCARD's resync count.", nil, nil)
	netPackets = prometheus.NewDesc("hdhomerun_network_packets_per_second",
		"A tuner's network packets per second.", []string{"tuner"}, nil)
	netErrors = prometheus.NewDesc("hdhomerun_network_errors",
		"A tuner's network error count.", []string{"tuner"}, nil)
)

// probe is the collector of one scrape of one device.
type probe struct {
	target  string
	timeout time.Duration
}

func (p *probe) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{deviceInfo, tunerInfo, signalStrength, signalToNoise,
		symbolError, cardBytes, cardOverflow, cardResync, netPackets, netErrors} {
		ch <- d
	}
}

func (p *probe) Collect(ch chan<- prometheus.Metric) {
	if err := p.collect(ch); err != nil {
		// any failure fails the scrape (HTTP 500), as the exporter has no up metric
		ch <- prometheus.NewInvalidMetric(deviceInfo, err)
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func (p *probe) collect(ch chan<- prometheus.Metric) error {
	c, err := hdhomerun.Dial(p.target)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	c.SetTimeout(p.timeout)

	model, err := c.Model()
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if _, err := c.Query("/sys/features"); err != nil {
		return fmt.Errorf("features: %w", err)
	}
	gauge(ch, deviceInfo, 1, model)

	var card *hdhomerun.CableCARDStatus
	err = c.ForEachTuner(func(t *hdhomerun.Tuner) error {
		if t.Index >= maxTuners {
			return errTooManyTuners
		}
		d, err := t.Debug()
		if err != nil {
			return err
		}
		tuner := strconv.Itoa(t.Index)
		if s := d.Tuner; s != nil {
			gauge(ch, tunerInfo, 1, tuner, s.Channel, s.Lock)
			gauge(ch, signalStrength, float64(s.SignalStrength)/100, tuner)
			gauge(ch, signalToNoise, float64(s.SignalToNoiseQuality)/100, tuner)
			gauge(ch, symbolError, float64(s.SymbolErrorQuality)/100, tuner)
		}
		if n := d.Network; n != nil {
			gauge(ch, netPackets, float64(n.PacketsPerSecond), tuner)
			gauge(ch, netErrors, float64(n.Errors), tuner)
		}
		if card == nil && d.CableCARD != nil {
			card = d.CableCARD // one card per device: every tuner reports the same figures
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("tuners: %w", err)
	}
	if card != nil {
		gauge(ch, cardBytes, float64(card.BitsPerSecond)/8)
		gauge(ch, cardOverflow, float64(card.Overflow))
		gauge(ch, cardResync, float64(card.Resync))
	}
	return nil
}

// metricsHandler serves /metrics?target=host:port; the target must be a literal loopback
// address with its port (no name resolution, no default port, never a broadcast).
func metricsHandler(timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.URL.Query().Get("target")
		if target == "" {
			http.Error(w, "missing target parameter", http.StatusBadRequest)
			return
		}
		if err := loopback(target); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reg := prometheus.NewRegistry()
		if err := reg.Register(&probe{target: target, timeout: timeout}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(w, r)
	})
}

// serve listens on a loopback address, prints the address it bound (port 0 picks one) as the
// first line of stdout, and serves until killed.
func serve(listen string, timeout time.Duration) error {
	if err := loopback(listen); err != nil {
		return err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler(timeout))
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	err = s.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
