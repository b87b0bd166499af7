package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress draws a one-line bar on a terminal:
//
//	entries [##########----------]  51% 1234/2420
//
// A nil *progress draws nothing. It redraws at most every 100 ms.
type progress struct {
	w     io.Writer
	label string
	total uint64
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, on bool, label string, total uint64) *progress {
	if !on || total == 0 {
		return nil
	}
	return &progress{w: w, label: label, total: total}
}

func (p *progress) set(done uint64) {
	if p == nil {
		return
	}
	if now := time.Now(); done < p.total && now.Sub(p.last) < 100*time.Millisecond {
		return
	} else {
		p.last = now
	}
	fmt.Fprint(p.w, "\r"+bar(p.label, done, p.total, 30))
	p.drawn = true
}

// done ends the line.
func (p *progress) done() {
	if p != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}

// bar renders the bar text.
func bar(label string, done, total uint64, width int) string {
	if done > total {
		done = total
	}
	frac := float64(done) / float64(total)
	fill := int(frac * float64(width))
	return fmt.Sprintf("%s [%s%s] %3d%% %d/%d", label, strings.Repeat("#", fill), strings.Repeat("-", width-fill), int(frac*100), done, total)
}
