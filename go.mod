module github.com/heapguard/heapguard

go 1.26.0

toolchain go1.26.8

require (
	github.com/google/go-cmp v0.7.0
	github.com/nxadm/tail v1.4.11
	go.uber.org/zap v1.28.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
)

require (
	github.com/fsnotify/fsnotify v1.6.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	gopkg.in/tomb.v1 v1.0.0-20141024135613-dd632973f1e7 // indirect
)
