// Command zap is the floor with a line per poll through a zap.Logger, as
// heapguard logs: package zap imports net/http (its level handler), whose
// package initialisation links crypto/tls and crypto/x509.
package main

import (
	"os"

	"github.com/heapguard/heapguard/tools/rssfloor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	rssfloor.Tune()
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), zapcore.InfoLevel))
	rssfloor.Poll(func(n int) { log.Info("poll", zap.Int("n", n)) })
}
