//! kube-scheduler: upstream's scheduling framework (one trait per extension point) and
//! its default plugins. Not built yet: see the kube-scheduler issue.
