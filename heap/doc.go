// Package heap lists the vmkernel heaps (vsish -e ls /system/heaps/), parses
// their statistics into Samples, and fits a trend that predicts when a heap
// will be exhausted.
//
// It must not know about VMs or actions.
package heap
