//! kube-controller-manager: one module per controller over shared informer caches.
//! Not built yet: see the kube-controller-manager issue.
