//! Compatibility scenarios named after upstream conformance tests, runnable against
//! any cluster given a kubeconfig. Scenarios arrive with the behaviours they cover.
