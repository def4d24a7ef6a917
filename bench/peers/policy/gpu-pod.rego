# The GPU-pod rules of Annexa's src/policy/workload.rs, in Rego (OPA/Gatekeeper), with the
# parameters of the benchmark context (benches/fixtures/context.yaml: Production, allowed
# registry registry.example.com, the baseline GPU pools). Input: the whole AdmissionReview, as
# OPA's kube-mgmt and Gatekeeper pass it. `deny` is the set of violations; allowed iff empty.
# Not ported (no fixture exercises them): the nearest-stricter-pool fallback (the baseline has a
# pool per classification) and the agent-token rules (A.5.18).
package annexa.gpu

params := {
	"allowed_registries": ["registry.example.com"],
	"require_digest": true,
	"gpu_resources": {"nvidia.com/gpu", "amd.com/gpu"},
	"pools": {c: {
		"node_selector": {"annexa.dev/gpu-pool": c},
		"taint": {"key": "annexa.dev/gpu-pool", "value": c, "effect": "NoSchedule"},
	} | some c in ["public", "internal", "confidential", "restricted"]},
}

obj := input.request.object

template_path := {
	"Deployment": ["spec", "template"], "StatefulSet": ["spec", "template"],
	"DaemonSet": ["spec", "template"], "ReplicaSet": ["spec", "template"],
	"Job": ["spec", "template"], "CronJob": ["spec", "jobTemplate", "spec", "template"],
}

template := obj if obj.kind == "Pod"

template := object.get(obj, template_path[obj.kind], {})

pod := object.get(template, "spec", {})

labels := object.get(template, ["metadata", "labels"], {})

containers := array.concat(object.get(pod, "initContainers", []), object.get(pod, "containers", []))

# Images (A.8.19 registries, A.8.9 digests).
registry_ok(image) if {
	some r in params.allowed_registries
	image == r
}

registry_ok(image) if {
	some r in params.allowed_registries
	some sep in ["/", ":", "@"]
	startswith(image, concat("", [r, sep]))
}

registry_ok(image) if {
	some r in params.allowed_registries
	endswith(r, "/")
	startswith(image, r)
}

pinned(image) if regex.match(`@sha256:[0-9a-fA-F]{64}$`, image)

deny contains msg if {
	some c in containers
	image := object.get(c, "image", "")
	not registry_ok(image)
	msg := sprintf("container %q uses image %q, which is not from an allowed registry", [c.name, image])
}

deny contains msg if {
	params.require_digest
	some c in containers
	image := object.get(c, "image", "")
	not pinned(image)
	msg := sprintf("container %q uses image %q, which is not pinned by digest", [c.name, image])
}

# GPU placement (A.8.22).
nonzero(q) if {
	is_number(q)
	q > 0
}

nonzero(q) if {
	is_string(q)
	to_number(regex.replace(trim_space(q), `[A-Za-z]+$`, "")) > 0
}

gpu if {
	some c in containers
	some field in ["limits", "requests"]
	some name, q in object.get(c, ["resources", field], {})
	name in params.gpu_resources
	nonzero(q)
}

classification := lower(object.get(labels, "annexa.dev/classification", "Internal"))

deny contains msg if {
	gpu
	not params.pools[classification]
	msg := sprintf("classification %q is not Public, Internal, Confidential or Restricted", [classification])
}

pool := params.pools[classification]

tolerates(t, taint) if {
	object.get(t, "operator", "") == "Exists"
	object.get(t, "key", "") in {"", taint.key}
	object.get(t, "effect", "") in {"", taint.effect}
}

tolerates(t, taint) if {
	object.get(t, "operator", "") != "Exists"
	object.get(t, "key", "") == taint.key
	object.get(t, "effect", "") in {"", taint.effect}
	object.get(t, "value", "") == taint.value
}

deny contains msg if {
	gpu
	some k, v in pool.node_selector
	object.get(pod, ["nodeSelector", k], null) != v
	msg := sprintf("requests GPUs but does not select the pool (%s=%s)", [k, v])
}

deny contains msg if {
	gpu
	taint := pool.taint
	not any_toleration(taint)
	msg := sprintf("requests GPUs but does not tolerate the pool taint %s=%s:%s", [taint.key, taint.value, taint.effect])
}

any_toleration(taint) if {
	some t in object.get(pod, "tolerations", [])
	tolerates(t, taint)
}

deny contains msg if {
	gpu
	rc := pool.runtime_class_name
	object.get(pod, "runtimeClassName", "") != rc
	msg := sprintf("requests GPUs but does not use runtimeClassName %q", [rc])
}

deny contains msg if {
	not gpu
	some i, t in object.get(pod, "tolerations", [])
	some name, p in params.pools
	tolerates(t, p.taint)
	msg := sprintf("requests no GPU but tolerations[%d] tolerates the %s GPU pool taint", [i, name])
}

# Privilege (A.8.2), for GPU pods.
deny contains msg if {
	gpu
	some c in containers
	object.get(c, ["securityContext", "privileged"], false) == true
	msg := sprintf("requests GPUs and container %q is privileged", [c.name])
}

deny contains msg if {
	gpu
	some field in ["hostNetwork", "hostPID", "hostIPC"]
	object.get(pod, field, false) == true
	msg := sprintf("requests GPUs and uses %s", [field])
}

deny contains msg if {
	gpu
	some v in object.get(pod, "volumes", [])
	v.hostPath
	msg := sprintf("requests GPUs and mounts hostPath volume %q", [v.name])
}
