"""C-FIND with each filter against Orthanc, and against DCMTK dcmqrscp (NUL-padded UIDs)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.net import peers
from viewer.net import contexts, diagnose
from viewer.net.diagnose import NetError
from viewer.net.find import FindQuery, find
from viewer.net.nodes import LocalSettings, Node


@pytest.fixture
def pacs(
    orthanc: peers.Orthanc, study: peers.StudyFiles, other_study: peers.StudyFiles
) -> peers.Orthanc:
    orthanc.upload(study.files + other_study.files)
    return orthanc


def uids(node: Node, local: LocalSettings, **filters: str) -> set[str]:
    return {m["StudyInstanceUID"] for m in find(node, local, FindQuery(**filters)).matches}


def test_each_filter(
    pacs: peers.Orthanc,
    orthanc_node: Node,
    local: LocalSettings,
    study: peers.StudyFiles,
    other_study: peers.StudyFiles,
) -> None:
    both = {study.study_instance_uid, other_study.study_instance_uid}
    doe = {study.study_instance_uid}
    smith = {other_study.study_instance_uid}
    assert uids(orthanc_node, local) == both
    assert uids(orthanc_node, local, patient_name="DOE*") == doe
    assert uids(orthanc_node, local, patient_name="D?E^JOHN") == doe
    assert uids(orthanc_node, local, patient_name="*ANNA") == smith
    assert uids(orthanc_node, local, patient_id="LB002") == smith
    assert uids(orthanc_node, local, accession_number="ACC001") == doe
    assert uids(orthanc_node, local, study_date_from="20240101") == doe
    assert uids(orthanc_node, local, study_date_to="20231231") == smith
    assert uids(orthanc_node, local, study_date_from="20230505", study_date_to="20230505") == smith
    assert uids(orthanc_node, local, study_date_from="20230101", study_date_to="20241231") == both
    assert uids(orthanc_node, local, modality="MR") == smith
    assert uids(orthanc_node, local, modality="OT") == doe
    assert uids(orthanc_node, local, study_description="BRAIN*") == smith
    assert uids(orthanc_node, local, patient_name="NOBODY*") == set()


def test_return_keys_and_lower_levels(
    pacs: peers.Orthanc, orthanc_node: Node, local: LocalSettings, study: peers.StudyFiles
) -> None:
    result = find(orthanc_node, local, FindQuery(patient_id="LB001"))
    assert result.model == contexts.StudyRootQueryRetrieveInformationModelFind
    [match] = result.matches
    assert match["PatientName"] == "DOE^JOHN"
    assert match["StudyDate"] == "20240102"
    assert set(match["ModalitiesInStudy"].split("\\")) == {"CT", "OT"}
    assert match["NumberOfStudyRelatedSeries"] == "3"
    assert match["NumberOfStudyRelatedInstances"] == "6"

    series = find(
        orthanc_node, local, FindQuery("SERIES", study_instance_uid=study.study_instance_uid)
    ).matches
    assert {s["SeriesInstanceUID"] for s in series} == set(study.series)
    counts = {s["SeriesInstanceUID"]: int(s["NumberOfSeriesRelatedInstances"]) for s in series}
    assert counts == {uid: len(sops) for uid, sops in study.series.items()}

    first = next(iter(study.series))
    images = find(
        orthanc_node,
        local,
        FindQuery("IMAGE", study_instance_uid=study.study_instance_uid, series_instance_uid=first),
    ).matches
    assert {i["SOPInstanceUID"] for i in images} == set(study.series[first])
    assert {i["SOPClassUID"] for i in images} == {"1.2.840.10008.5.1.4.1.1.2"}


def test_keys_from_the_command_line_form(
    pacs: peers.Orthanc, orthanc_node: Node, local: LocalSettings, study: peers.StudyFiles
) -> None:
    query = FindQuery.from_keys("study", {"PatientID": "LB001", "InstitutionName": ""})
    [match] = find(orthanc_node, local, query).matches
    assert match["StudyInstanceUID"] == study.study_instance_uid
    with pytest.raises(ValueError, match="NotAKeyword"):
        FindQuery.from_keys("study", {"NotAKeyword": "x"})
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        FindQuery("SERIES")


def test_limit_cancels_and_the_association_ends_cleanly(
    pacs: peers.Orthanc, orthanc_node: Node, local: LocalSettings
) -> None:
    result = find(orthanc_node, local, FindQuery(), limit=1)
    assert len(result.matches) >= 1 and not result.cancelled
    cancel = threading.Event()
    cancel.set()
    start = time.monotonic()
    result = find(orthanc_node, local, FindQuery(), cancel=cancel)
    assert time.monotonic() - start < 5
    assert result.cancelled and result.matches == []


def test_dcmqrscp_answers_without_nul_padding(
    dcmqrscp_node: Node, local: LocalSettings, study: peers.StudyFiles
) -> None:
    [match] = find(dcmqrscp_node, local, FindQuery(patient_name="DOE*")).matches
    assert match["StudyInstanceUID"] == study.study_instance_uid
    assert "\0" not in "".join(match.values())
    first = next(iter(study.series))
    images = find(
        dcmqrscp_node,
        local,
        FindQuery("IMAGE", study_instance_uid=study.study_instance_uid, series_instance_uid=first),
    ).matches
    assert {i["SOPInstanceUID"] for i in images} == set(study.series[first])


def test_a_peer_without_query_service_is_diagnosed(
    local: LocalSettings, tmp_path: pytest.TempPathFactory
) -> None:
    storescp = peers.start_storescp(tmp_path)  # type: ignore[arg-type]
    try:
        with pytest.raises(NetError) as info:
            find(Node("s", "PEER", "127.0.0.1", storescp.port), local, FindQuery())
    finally:
        storescp.stop()
    assert info.value.code == diagnose.NO_CONTEXT


@pytest.mark.parametrize("peer", ["orthanc", "dcmqrscp"])
def test_patient_root_when_the_peer_offers_only_that(
    peer: str,
    request: pytest.FixtureRequest,
    local: LocalSettings,
    study: peers.StudyFiles,
) -> None:
    """Patient Root is hierarchical: patients first, then their studies (PS3.4 C.4.1.2.1)."""
    if peer == "orthanc":
        request.getfixturevalue("orthanc").upload(study.files)
    node: Node = request.getfixturevalue(f"{peer}_node")
    only = (contexts.PatientRootQueryRetrieveInformationModelFind,)
    result = find(node, local, FindQuery(patient_name="DOE*"), models=only)
    assert result.model == contexts.PatientRootQueryRetrieveInformationModelFind
    assert [m["StudyInstanceUID"] for m in result.matches] == [study.study_instance_uid]
    assert result.matches[0]["PatientID"] == "LB001"
