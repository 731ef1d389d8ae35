// Command zapcore is the floor with a line per poll through zapcore alone
// (which does not import net/http).
package main

import (
	"os"
	"time"

	"github.com/heapguard/heapguard/tools/rssfloor"
	"go.uber.org/zap/zapcore"
)

func main() {
	rssfloor.Tune()
	enc := zapcore.EncoderConfig{TimeKey: "ts", MessageKey: "msg", EncodeTime: zapcore.ISO8601TimeEncoder}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), zapcore.InfoLevel)
	rssfloor.Poll(func(n int) {
		core.Write(zapcore.Entry{Message: "poll", Time: time.Now()},
			[]zapcore.Field{{Key: "n", Type: zapcore.Int64Type, Integer: int64(n)}})
	})
}
