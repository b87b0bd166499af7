package talos

// Version is the version of this library.
const Version = "0.1.0"

// ProtocolRange is the range of Talos Protocol contract versions this library
// speaks (the contracts' SUPPORTED_PROTOCOL_RANGE).
var ProtocolRange = [2]string{"1.0", "1.x"}

// ContractManifestHash is CONTRACT_HASH of the contracts release this library
// is tested against: base64url(SHA-256(canonical(sdk/contract_manifest.json))).
const ContractManifestHash = "3gi_Ti6G17oMQabjDlVUXcfBqOjN4HswNdD4Lu0uyyI"

// RatchetScheduleHash is the schedule_hash of sdk/ratchet_kdf_schedule.json
// the ratchet package implements.
const RatchetScheduleHash = "TUk4d-djKlVaeLHIF922mq_otmiMOlskHJBA_D23zIA"
