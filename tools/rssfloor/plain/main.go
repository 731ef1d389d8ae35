// Command plain is the floor: a poll's least work, no logging library.
package main

import "github.com/heapguard/heapguard/tools/rssfloor"

func main() {
	rssfloor.Tune()
	rssfloor.Poll(func(int) {})
}
