//! IRQL, per thread, and the rule every emulated routine applies on entry: the caller's IRQL may
//! not exceed the routine's documented maximum. The table below gives each routine's maximum with
//! the Microsoft page that states it (the page's Requirements › IRQL, or where the page has none,
//! the WDK header's `_IRQL_requires_max_`); the host checks it on every call, records a
//! [`Violation`] naming the rule, and the scenario fails at its next check.
//!
//! How the real frameworks enforce it: NetAdapterCx always bugchecks on a wrong IRQL
//! (`netcx/adapter/verifier.cpp`, `Verifier_VerifyIrqlPassive` /
//! `Verifier_VerifyIrqlLessThanOrEqualDispatch`); KMDF checks only with its verifier on
//! (`FxVerifierCheckIrqlLevel`, `src/framework/shared/inc/private/common/fxverifier.h`). The host
//! holds both to the documented rule.

use std::cell::Cell;
use std::sync::Mutex;

/// `PASSIVE_LEVEL`.
pub const PASSIVE: u8 = 0;
/// `APC_LEVEL`.
pub const APC: u8 = 1;
/// `DISPATCH_LEVEL`.
pub const DISPATCH: u8 = 2;
/// The device's interrupt level (any level above DISPATCH_LEVEL; the host uses one).
pub const DIRQL: u8 = 5;
/// `HIGH_LEVEL`.
pub const HIGH: u8 = 15;

thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(PASSIVE) };
}

/// The calling thread's IRQL.
pub fn current() -> u8 {
    IRQL.with(Cell::get)
}

/// Sets the calling thread's IRQL (the host's threads do, before calling the driver); returns
/// the previous one.
pub fn set(level: u8) -> u8 {
    IRQL.with(|c| c.replace(level))
}

/// Runs `f` at `level`, then restores the thread's IRQL.
pub fn at<T>(level: u8, f: impl FnOnce() -> T) -> T {
    let old = set(level);
    let r = f();
    set(old);
    r
}

/// A broken rule: which, where, and the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's name (e.g. `IrqlTooHigh`, `NetAdapterCx verifier: InvalidRingBeginIndex`).
    pub rule: String,
    /// What broke it.
    pub detail: String,
}

static VIOLATIONS: Mutex<Vec<Violation>> = Mutex::new(Vec::new());

/// Records a violation (it is reported by [`take_violations`]).
pub fn violation(rule: &str, detail: String) {
    let mut v = VIOLATIONS.lock().unwrap_or_else(|e| e.into_inner());
    if v.len() < 1000 {
        v.push(Violation {
            rule: rule.to_string(),
            detail,
        });
    }
}

/// Every violation recorded since the last call.
pub fn take_violations() -> Vec<Violation> {
    std::mem::take(&mut *VIOLATIONS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// One routine's IRQL rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The routine.
    pub api: &'static str,
    /// The highest IRQL it may be called at.
    pub max: u8,
    /// Where that is stated.
    pub doc: &'static str,
}

const DDI: &str = "https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/";

macro_rules! rules {
    ($($api:literal => $max:expr, $page:literal;)*) => {
        /// Every routine the host emulates, with its documented maximum IRQL and its page (under
        /// `https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/`).
        pub const RULES: &[Rule] = &[$(Rule { api: $api, max: $max, doc: $page },)*];
    };
}

rules! {
    // WDF (KMDF 1.33). Requirements › IRQL of each page.
    "WdfDriverCreate" => PASSIVE, "wdfdriver/nf-wdfdriver-wdfdrivercreate";
    "WdfDeviceInitSetPnpPowerEventCallbacks" => DISPATCH, "wdfdevice/nf-wdfdevice-wdfdeviceinitsetpnppowereventcallbacks";
    "WdfDeviceCreate" => PASSIVE, "wdfdevice/nf-wdfdevice-wdfdevicecreate";
    "WdfDeviceSetFailed" => DISPATCH, "wdfdevice/nf-wdfdevice-wdfdevicesetfailed";
    // No IRQL on the page; wdfobject.h: _IRQL_requires_max_(DISPATCH_LEVEL+1).
    "WdfObjectGetTypedContextWorker" => DIRQL, "wdfobject/nf-wdfobject-wdfobjectgettypedcontextworker";
    // "must be called at IRQL <= DISPATCH_LEVEL ... if your driver is deleting a common buffer,
    // WdfObjectDelete must be called at IRQL = PASSIVE_LEVEL" (Remarks; checked per object).
    "WdfObjectDelete" => DISPATCH, "wdfobject/nf-wdfobject-wdfobjectdelete";
    "WdfFdoQueryForInterface" => PASSIVE, "wdffdo/nf-wdffdo-wdffdoqueryforinterface";
    "WdfCmResourceListGetCount" => DISPATCH, "wdfresource/nf-wdfresource-wdfcmresourcelistgetcount";
    "WdfCmResourceListGetDescriptor" => DISPATCH, "wdfresource/nf-wdfresource-wdfcmresourcelistgetdescriptor";
    "WdfDmaEnablerCreate" => PASSIVE, "wdfdmaenabler/nf-wdfdmaenabler-wdfdmaenablercreate";
    "WdfCommonBufferCreateWithConfig" => PASSIVE, "wdfcommonbuffer/nf-wdfcommonbuffer-wdfcommonbuffercreatewithconfig";
    "WdfCommonBufferGetAlignedVirtualAddress" => DISPATCH, "wdfcommonbuffer/nf-wdfcommonbuffer-wdfcommonbuffergetalignedvirtualaddress";
    "WdfCommonBufferGetAlignedLogicalAddress" => DISPATCH, "wdfcommonbuffer/nf-wdfcommonbuffer-wdfcommonbuffergetalignedlogicaladdress";
    "WdfInterruptCreate" => DISPATCH, "wdfinterrupt/nf-wdfinterrupt-wdfinterruptcreate";
    "WdfInterruptQueueDpcForIsr" => DIRQL, "wdfinterrupt/nf-wdfinterrupt-wdfinterruptqueuedpcforisr";
    "WdfInterruptGetInfo" => DISPATCH, "wdfinterrupt/nf-wdfinterrupt-wdfinterruptgetinfo";
    "WdfInterruptAcquireLock" => DIRQL, "wdfinterrupt/nf-wdfinterrupt-wdfinterruptacquirelock";
    "WdfInterruptReleaseLock" => DIRQL, "wdfinterrupt/nf-wdfinterrupt-wdfinterruptreleaselock";
    "WdfSpinLockCreate" => DISPATCH, "wdfsync/nf-wdfsync-wdfspinlockcreate";
    "WdfSpinLockAcquire" => DISPATCH, "wdfsync/nf-wdfsync-wdfspinlockacquire";
    "WdfSpinLockRelease" => DISPATCH, "wdfsync/nf-wdfsync-wdfspinlockrelease";
    "WdfTimerCreate" => DISPATCH, "wdftimer/nf-wdftimer-wdftimercreate";
    "WdfTimerStart" => DISPATCH, "wdftimer/nf-wdftimer-wdftimerstart";
    // DISPATCH_LEVEL, or PASSIVE_LEVEL when Wait is TRUE (checked in the routine).
    "WdfTimerStop" => DISPATCH, "wdftimer/nf-wdftimer-wdftimerstop";
    "WdfTimerGetParentObject" => DISPATCH, "wdftimer/nf-wdftimer-wdftimergetparentobject";
    "WdfWorkItemCreate" => DISPATCH, "wdfworkitem/nf-wdfworkitem-wdfworkitemcreate";
    "WdfWorkItemEnqueue" => DISPATCH, "wdfworkitem/nf-wdfworkitem-wdfworkitemenqueue";
    "WdfWorkItemFlush" => PASSIVE, "wdfworkitem/nf-wdfworkitem-wdfworkitemflush";
    "WdfWorkItemGetParentObject" => DISPATCH, "wdfworkitem/nf-wdfworkitem-wdfworkitemgetparentobject";
    // NT.
    "MmMapIoSpaceEx" => DISPATCH, "wdm/nf-wdm-mmmapiospaceex";
    // The page allows DISPATCH_LEVEL; Driver Verifier's 0xC4/0x7B fires above APC_LEVEL (the
    // stricter rule is the one held to).
    "MmUnmapIoSpace" => APC, "wdm/nf-wdm-mmunmapiospace";
    "KeQueryUnbiasedInterruptTime" => HIGH, "wdm/nf-wdm-kequeryunbiasedinterrupttime";
    "KeDelayExecutionThread" => APC, "wdm/nf-wdm-kedelayexecutionthread";
    "KeStallExecutionProcessor" => HIGH, "wdm/nf-wdm-kestallexecutionprocessor";
    "KeFlushQueuedDpcs" => PASSIVE, "wdm/nf-wdm-keflushqueueddpcs";
    // NetAdapterCx 2.2.
    "NetDeviceInitConfig" => PASSIVE, "netdevice/nf-netdevice-netdeviceinitconfig";
    "NetDeviceInitSetResetCapabilities" => PASSIVE, "netdevice/nf-netdevice-netdeviceinitsetresetcapabilities";
    "NetDeviceRequestReset" => PASSIVE, "netdevice/nf-netdevice-netdevicerequestreset";
    "NetDeviceStoreResetDiagnostics" => PASSIVE, "netdevice/nf-netdevice-netdevicestoreresetdiagnostics";
    "NetAdapterInitAllocate" => PASSIVE, "netadapter/nf-netadapter-netadapterinitallocate";
    "NetAdapterInitFree" => PASSIVE, "netadapter/nf-netadapter-netadapterinitfree";
    "NetAdapterInitSetDatapathCallbacks" => PASSIVE, "netadapter/nf-netadapter-netadapterinitsetdatapathcallbacks";
    "NetAdapterCreate" => PASSIVE, "netadapter/nf-netadapter-netadaptercreate";
    "NetAdapterStart" => PASSIVE, "netadapter/nf-netadapter-netadapterstart";
    "NetAdapterStop" => PASSIVE, "netadapter/nf-netadapter-netadapterstop";
    "NetAdapterSetLinkLayerCapabilities" => PASSIVE, "netadapter/nf-netadapter-netadaptersetlinklayercapabilities";
    "NetAdapterSetLinkLayerMtuSize" => PASSIVE, "netadapter/nf-netadapter-netadaptersetlinklayermtusize";
    "NetAdapterSetDataPathCapabilities" => PASSIVE, "netadapter/nf-netadapter-netadaptersetdatapathcapabilities";
    "NetAdapterSetLinkState" => DISPATCH, "netadapter/nf-netadapter-netadaptersetlinkstate";
    "NetAdapterOpenConfiguration" => PASSIVE, "netadapter/nf-netadapter-netadapteropenconfiguration";
    "NetAdapterSetPermanentLinkLayerAddress" => PASSIVE, "netadapter/nf-netadapter-netadaptersetpermanentlinklayeraddress";
    "NetAdapterSetCurrentLinkLayerAddress" => PASSIVE, "netadapter/nf-netadapter-netadaptersetcurrentlinklayeraddress";
    "NetConfigurationClose" => PASSIVE, "netconfiguration/nf-netconfiguration-netconfigurationclose";
    "NetConfigurationQueryUlong" => PASSIVE, "netconfiguration/nf-netconfiguration-netconfigurationqueryulong";
    "NetConfigurationQueryLinkLayerAddress" => PASSIVE, "netconfiguration/nf-netconfiguration-netconfigurationquerylinklayeraddress";
    "NetConfigurationQueryBinary" => PASSIVE, "netconfiguration/nf-netconfiguration-netconfigurationquerybinary";
    "NetConfigurationAssignUlong" => PASSIVE, "netconfiguration/nf-netconfiguration-netconfigurationassignulong";
    "NetConfigurationAssignBinary" => PASSIVE, "netconfiguration/nf-netconfiguration-netconfigurationassignbinary";
    "NetAdapterSetReceiveScalingCapabilities" => PASSIVE, "netreceivescaling/nf-netreceivescaling-netadaptersetreceivescalingcapabilities";
    "NetRxQueueCreate" => PASSIVE, "netrxqueue/nf-netrxqueue-netrxqueuecreate";
    "NetRxQueueNotifyMoreReceivedPacketsAvailable" => HIGH, "netrxqueue/nf-netrxqueue-netrxqueuenotifymorereceivedpacketsavailable";
    "NetRxQueueInitGetQueueId" => PASSIVE, "netrxqueue/nf-netrxqueue-netrxqueueinitgetqueueid";
    "NetRxQueueGetRingCollection" => PASSIVE, "netrxqueue/nf-netrxqueue-netrxqueuegetringcollection";
    "NetRxQueueGetExtension" => PASSIVE, "netrxqueue/nf-netrxqueue-netrxqueuegetextension";
    "NetTxQueueCreate" => PASSIVE, "nettxqueue/nf-nettxqueue-nettxqueuecreate";
    "NetTxQueueNotifyMoreCompletedPacketsAvailable" => HIGH, "nettxqueue/nf-nettxqueue-nettxqueuenotifymorecompletedpacketsavailable";
    "NetTxQueueInitGetQueueId" => PASSIVE, "nettxqueue/nf-nettxqueue-nettxqueueinitgetqueueid";
    "NetTxQueueGetRingCollection" => PASSIVE, "nettxqueue/nf-nettxqueue-nettxqueuegetringcollection";
    "NetTxQueueGetExtension" => PASSIVE, "nettxqueue/nf-nettxqueue-nettxqueuegetextension";
    // No IRQL on these pages; netadapter.h / netadapteroffload.h annotations.
    "NetAdapterSetReceiveFilterCapabilities" => PASSIVE, "netadapter/nf-netadapter-netadaptersetreceivefiltercapabilities";
    "NetReceiveFilterGetPacketFilter" => DISPATCH, "netadapter/nf-netadapter-netreceivefiltergetpacketfilter";
    "NetReceiveFilterGetMulticastAddressCount" => DISPATCH, "netadapter/nf-netadapter-netreceivefiltergetmulticastaddresscount";
    "NetReceiveFilterGetMulticastAddressList" => DISPATCH, "netadapter/nf-netadapter-netreceivefiltergetmulticastaddresslist";
    "NetAdapterOffloadSetIeee8021qTagCapabilities" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netadapteroffloadsetieee8021qtagcapabilities";
    "NetAdapterOffloadSetTxChecksumCapabilities" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netadapteroffloadsettxchecksumcapabilities";
    "NetOffloadIsTxChecksumIPv4Enabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadistxchecksumipv4enabled";
    "NetOffloadIsTxChecksumTcpEnabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadistxchecksumtcpenabled";
    "NetOffloadIsTxChecksumUdpEnabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadistxchecksumudpenabled";
    "NetAdapterOffloadSetRxChecksumCapabilities" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netadapteroffloadsetrxchecksumcapabilities";
    "NetOffloadIsRxChecksumIPv4Enabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadisrxchecksumipv4enabled";
    "NetOffloadIsRxChecksumTcpEnabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadisrxchecksumtcpenabled";
    "NetOffloadIsRxChecksumUdpEnabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadisrxchecksumudpenabled";
    "NetAdapterOffloadSetGsoCapabilities" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netadapteroffloadsetgsocapabilities";
    "NetOffloadIsLsoIPv4Enabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadislsoipv4enabled";
    "NetOffloadIsLsoIPv6Enabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadislsoipv6enabled";
    "NetOffloadIsUsoIPv4Enabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadisusoipv4enabled";
    "NetOffloadIsUsoIPv6Enabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadisusoipv6enabled";
    "NetAdapterOffloadSetRscCapabilities" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netadapteroffloadsetrsccapabilities";
    "NetOffloadIsTcpRscIPv4Enabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadistcprscipv4enabled";
    "NetOffloadIsTcpRscIPv6Enabled" => PASSIVE, "netadapteroffload/nf-netadapteroffload-netoffloadistcprscipv6enabled";
}

/// The rule of routine `api` (every emulated routine has one: a missing entry is a host bug).
pub fn rule(api: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.api == api)
}

/// Checks the calling thread's IRQL against `api`'s rule; records `IrqlTooHigh` (or
/// `NoIrqlRule` for a routine the table lacks).
pub fn check(api: &str) {
    let now = current();
    match rule(api) {
        Some(r) if now > r.max => violation(
            "IrqlTooHigh",
            format!(
                "{api} called at IRQL {now}, documented maximum {} ({DDI}{})",
                r.max, r.doc
            ),
        ),
        Some(_) => {}
        None => violation("NoIrqlRule", format!("{api} has no IRQL rule in the host")),
    }
}
