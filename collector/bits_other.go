//go:build !amd64 || purego

package collector

func defaultMarkImpl() int { return implScalar }

// markImpls lists the implementations this machine can run (for tests).
func markImpls() []int { return []int{implScalar, implBitsGo} }

func markBitsFast([]byte, []uint64, []uint64) int { return 0 }

func markLinesFast([]byte, []int32, []uint64) (words, lines int) { return 0, 0 }
