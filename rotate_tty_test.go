//go:build linux

package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Interrupted (^C) at the prompt for the key, rotate ends and leaves the
// terminal echoing again, as it found it.
func TestRotateInterruptedAtThePromptRestoresEcho(t *testing.T) {
	t.Parallel()
	r := startRotation(t, 1)
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	go func() { _, _ = io.Copy(io.Discard, master) }()
	echo := func() bool {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Lflag&unix.ECHO != 0
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exogateBinary(t), "rotate", "-config", r.cfg, "-account", "acme", "-replicas", r.admins[0])
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// The terminal is rotate's controlling terminal: ^C there interrupts it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for echo() {
		select {
		case <-ctx.Done():
			t.Fatal("rotate never turned echo off for the prompt")
		case <-tick.C:
		}
	}
	if _, err := master.Write([]byte{3}); err != nil { // ^C
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatal("rotate did not end on ^C")
	}
	if err == nil {
		t.Error("rotate interrupted at the prompt exited 0")
	}
	if !echo() {
		t.Error("rotate interrupted at the prompt left the terminal without echo")
	}
	if r.pair(t) != rotKeyOld+":"+rotTokenOld {
		t.Error("the files changed")
	}
}
