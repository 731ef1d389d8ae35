// Package collector reads the ESXi vmkernel log: it parses each line of every
// log format (4.x /var/log/messages, 5.1–7.x and 8.x vmkernel.log) into a
// typed Event, scans whole files (rotated .gz ones too) or follows a live
// one, and tracks which virtual NIC ports flap. For reports it also reads
// the agents' logs (hostd.log, vpxa.log, vobd.log, told apart by their
// lines) for agent crashes, and counts each crash once.
//
// It must not run commands or decide anything.
package collector
