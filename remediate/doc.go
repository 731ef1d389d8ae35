// Package remediate acts on the host: it builds the VM inventory and maps
// MACs to VMs (.vmx files, vim-cmd, net-stats), powers VMs off (gracefully,
// then hard), restarts vpxa and hostd through their init scripts, verifies
// the result, keeps the journal and enforces every safety guard.
//
// It must not decide whether to act; package agent does.
package remediate
