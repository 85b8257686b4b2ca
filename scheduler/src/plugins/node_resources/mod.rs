//! NodeResourcesFit and NodeResourcesBalancedAllocation, and the resource-allocation
//! scoring they share (upstream's `plugins/noderesources`): one module per upstream
//! file, the Fit strategies (least, most, requested-to-capacity-ratio) each beside its
//! tests.

pub mod balanced_allocation;
pub mod fit;
pub mod least_allocated;
pub mod most_allocated;
pub mod requested_to_capacity_ratio;
pub mod resource_allocation;

#[cfg(test)]
mod testing;
