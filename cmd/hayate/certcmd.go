package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/hayate-sfu/hayate/cluster/clustercert"
)

const certUsage = `usage: hayate cluster-cert ca -out DIR [-days N]
       hayate cluster-cert node -ca DIR -name NAME -out DIR [-days N]
"ca" makes a cluster CA: DIR/ca.pem and DIR/ca-key.pem (keep the key off the nodes).
"node" makes the certificate of the node whose cluster_node_name is NAME, signed by
the CA in -ca: DIR/node.pem, DIR/node-key.pem and a copy of DIR/ca.pem, and prints
the three config lines that use them. Existing files are never overwritten.
`

// clusterCert makes cluster credentials for operators who have none.
func clusterCert(args []string, stdout, stderr io.Writer) int {
	usage := func() int { fmt.Fprint(stderr, certUsage); return 2 }
	if len(args) == 0 || (args[0] != "ca" && args[0] != "node") {
		return usage()
	}
	fs := flag.NewFlagSet("hayate cluster-cert "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, certUsage); fs.PrintDefaults() }
	out := fs.String("out", "", "directory to write into (created if missing)")
	days := fs.Int("days", 0, "validity in days (default: CA 3650, node 730)")
	caDir := fs.String("ca", "", "directory of the CA (node only)")
	name := fs.String("name", "", "the node's cluster_node_name (node only)")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 || *out == "" || *days < 0 {
		return usage()
	}
	validity := time.Duration(*days) * 24 * time.Hour
	var err error
	switch args[0] {
	case "ca":
		if validity == 0 {
			validity = clustercert.DefaultCAValidity
		}
		err = clustercert.WriteCA(*out, validity)
		if err == nil {
			fmt.Fprintf(stdout, "cluster CA written to %s (%s, %s)\n", *out, clustercert.CAFile, clustercert.CAKeyFile)
		}
	case "node":
		if *caDir == "" || *name == "" {
			return usage()
		}
		if validity == 0 {
			validity = clustercert.DefaultNodeValidity
		}
		err = clustercert.WriteNode(*caDir, *name, *out, validity)
		if err == nil {
			abs, _ := filepath.Abs(*out)
			fmt.Fprintf(stdout, "cluster_node_name = %s\ncluster_tls_ca_file = %s\ncluster_tls_cert_file = %s\ncluster_tls_key_file = %s\n",
				*name, filepath.Join(abs, clustercert.CAFile), filepath.Join(abs, clustercert.NodeFile), filepath.Join(abs, clustercert.NodeKeyFile))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "hayate cluster-cert:", err)
		return 1
	}
	return 0
}
