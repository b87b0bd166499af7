package main

import "testing"

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://127.9.9.9:1", "http://localhost:8080", "http://[::1]:8080"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://192.168.1.1", "http://example.com", "https://127.0.0.1:1", "127.0.0.1:8080", "http://[::2]:1", "http://0.0.0.0:80"} {
		if err := checkLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
