"""The fake API server of deploy/sandbox/ with the OrdinalVolume resource
(ordinal.csi.dev/v1alpha1, cluster-scoped, short name ov, status subresource) registered as a
built-in, for tests/k8s/test_kubectl_ordinal.py while the server does not serve CRDs
generically. Same command line as apiserver.py."""

import os
import sys

SANDBOX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                       "sandbox")
sys.path.insert(0, SANDBOX)

import resources  # noqa: E402

if ("ordinal.csi.dev", "v1alpha1", "ordinalvolumes") not in resources.BY_PATH:
    _ov = resources.Resource("ordinal.csi.dev", "v1alpha1", "ordinalvolumes", "ordinalvolume",
                             "OrdinalVolume", False, ["ov"], status=True)
    resources.RESOURCES.append(_ov)
    resources.BY_PATH[("ordinal.csi.dev", "v1alpha1", "ordinalvolumes")] = _ov
    resources.BY_KEY[_ov.key] = _ov
    resources.BY_KIND[(_ov.api_version, _ov.kind)] = _ov
    resources.GROUPS.append(("ordinal.csi.dev", "v1alpha1"))

import apiserver  # noqa: E402

if __name__ == "__main__":
    sys.exit(apiserver.main())
