//! Worker-node agents: kubelet (pods through CRI to containerd), kube-proxy and
//! cluster DNS. Not built yet: see the node issues.
