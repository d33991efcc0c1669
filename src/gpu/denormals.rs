//! Subnormal floats flushed to zero on the threads of a CPU driver.
//!
//! WGSL lets an implementation flush subnormal f32 values to zero, and GPUs do. A CPU driver
//! (lavapipe) runs its generated code on the host's FPU, which by default handles a subnormal
//! operand in microcode at about a hundred times the cost: on lavapipe a 12000x400x232 matmul
//! of subnormal inputs took 2.8 s against 52 ms for normal ones. A step's values can fall that
//! low (small gradients, exp of a large negative argument); where none do, the flag costs
//! nothing. A thread's floating-point control register is
//! inherited by the threads it creates, and lavapipe creates its worker threads with its device,
//! so [`FlushSubnormals`] sets flush-to-zero and denormals-are-zero while the device is
//! created and restores the previous mode when dropped: the driver's threads keep the flag, the
//! caller's thread does not.

/// While alive, the current thread flushes subnormal results and inputs to zero.
pub(crate) struct FlushSubnormals {
    saved: Option<u64>,
}

impl FlushSubnormals {
    /// Set the flush mode when `flush` (the tuning's `subnormals=flush`, the default; `keep`
    /// compares the numerics or the speed of both modes).
    pub(crate) fn new(flush: bool) -> FlushSubnormals {
        FlushSubnormals {
            saved: if flush { set() } else { None },
        }
    }
}

impl Drop for FlushSubnormals {
    fn drop(&mut self) {
        if let Some(s) = self.saved {
            restore(s);
        }
    }
}

/// MXCSR: FTZ (bit 15) and DAZ (bit 6).
#[cfg(target_arch = "x86_64")]
fn set() -> Option<u64> {
    let mut csr: u32 = 0;
    // SAFETY: stmxcsr/ldmxcsr read and write the SSE control register of this thread only;
    // the only bits changed are the flush modes, which no Rust code relies on being clear.
    unsafe {
        core::arch::asm!("stmxcsr [{}]", in(reg) &mut csr as *mut u32, options(nostack));
        let flushed = csr | 0x8040;
        core::arch::asm!("ldmxcsr [{}]", in(reg) &flushed as *const u32, options(nostack, readonly));
    }
    Some(csr as u64)
}

#[cfg(target_arch = "x86_64")]
fn restore(saved: u64) {
    let csr = saved as u32;
    // SAFETY: as in `set`: restores this thread's own earlier control register.
    unsafe {
        core::arch::asm!("ldmxcsr [{}]", in(reg) &csr as *const u32, options(nostack, readonly));
    }
}

/// FPCR: FZ (bit 24).
#[cfg(target_arch = "aarch64")]
fn set() -> Option<u64> {
    let fpcr: u64;
    // SAFETY: reads and writes this thread's floating-point control register only.
    unsafe {
        core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack));
        core::arch::asm!("msr fpcr, {}", in(reg) fpcr | (1 << 24), options(nomem, nostack));
    }
    Some(fpcr)
}

#[cfg(target_arch = "aarch64")]
fn restore(saved: u64) {
    // SAFETY: as in `set`.
    unsafe {
        core::arch::asm!("msr fpcr, {}", in(reg) saved, options(nomem, nostack));
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set() -> Option<u64> {
    None
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn restore(_saved: u64) {}
