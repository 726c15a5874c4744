module github.com/otel-bare-metal/otel-bare-metal/tools/hdhomerun-peer

go 1.26.0

// The exact version mdlayher/hdhomerun_exporter's go.mod pins (the exporter module itself is
// refused by the Go module proxy; its library is served).
require github.com/mdlayher/hdhomerun v0.0.0-20190314150037-2c805306b9bd

require github.com/google/go-cmp v0.2.0 // indirect
