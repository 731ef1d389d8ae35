package policy

import "flag"

// update rewrites golden files and story outputs:
//
//	go test ./policy -run 'TestPolicyStories|TestPlanGolden' -update
var update = flag.Bool("update", false, "rewrite golden files")
