package service

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// An Inhibitor keeps the machine awake while a run is in progress.
type Inhibitor interface {
	// Inhibit takes the lock; release gives it back. An error means the
	// machine may sleep during the run: the caller notes it and goes on.
	Inhibit(why string) (release func(), err error)
}

// commandInhibitor holds a lock for as long as a helper program runs: the
// helper (systemd-inhibit, caffeinate) runs `cat` on a pipe we hold, so the
// lock ends when we close the pipe — and also when we die, since the
// kernel closes it then.
type commandInhibitor struct {
	argv func(why string) []string
}

// settle is how long a helper that cannot take the lock (no logind, no
// D-Bus) has to say so before the lock counts as taken.
var settle = 300 * time.Millisecond

func (c commandInhibitor) Inhibit(why string) (func(), error) {
	argv := c.argv(why)
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// read only once the helper has exited: Wait copies it all first
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("keep the machine awake: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		text := strings.TrimSpace(stderr.String())
		if err == nil {
			err = errors.New("exited at once")
		}
		if text != "" {
			return nil, fmt.Errorf("keep the machine awake: %s: %w: %s", argv[0], err, text)
		}
		return nil, fmt.Errorf("keep the machine awake: %s: %w", argv[0], err)
	case <-time.After(settle):
	}
	return func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}, nil
}
