// Package promtext reads the Prometheus text exposition format into
// samples, for tests that scrape /metrics.
package promtext

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Parse returns the samples of body by series: the metric name with its
// labels as written ("name{a=\"b\"}"), comments and blank lines skipped.
func Parse(body []byte) (map[string]float64, error) {
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("bad sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples, sc.Err()
}
