//! kube-apiserver as a library: storage backends today; the REST gateway, registry and
//! request chain arrive with the kube-apiserver issue. The binary is a thin `main.rs`.

pub mod storage;
