// Wrapper module: builds etcd at one pinned release from the Go module proxy.
module nodelet.local/upstream/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
