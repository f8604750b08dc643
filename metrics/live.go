package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// liveCollector reports the gauges of what runs now, read from the
// sandbox manager's memory at each scrape rather than kept up to date on
// every state change: one place knows the states, and a gauge can never
// drift from it.
type liveCollector struct {
	read                    atomic.Pointer[func() Live]
	pods, containers, shims *prometheus.Desc
}

func newLiveCollector() *liveCollector {
	return &liveCollector{
		pods:       prometheus.NewDesc(namespace+"_pods", "Pod sandboxes, by state.", []string{"state"}, nil),
		containers: prometheus.NewDesc(namespace+"_containers", "Containers, by state.", []string{"state"}, nil),
		shims:      prometheus.NewDesc(namespace+"_shims", "husk-shim processes believed alive.", nil, nil),
	}
}

func (c *liveCollector) set(read func() Live) { c.read.Store(&read) }

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pods
	ch <- c.containers
	ch <- c.shims
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	read := c.read.Load()
	if read == nil {
		return
	}
	l := (*read)()
	for state, n := range l.Pods {
		ch <- prometheus.MustNewConstMetric(c.pods, prometheus.GaugeValue, float64(n), state)
	}
	for state, n := range l.Containers {
		ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(c.shims, prometheus.GaugeValue, float64(l.Shims))
}
