"""The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and their timers
(Kafka's classic half of GroupMetadataManager), over the groups of one coordinator shard.

A JoinGroup parks a future on its member; the response is sent when the rebalance's join phase
completes (all known members rejoined, or the rebalance timeout ran out; a new group waits
`group.initial.rebalance.delay.ms`, extended while members keep arriving, up to the rebalance
timeout). The leader's SyncGroup carries every member's assignment (opaque bytes, passed through);
once the GroupMetadata record holding them is written, each parked SyncGroup gets its own bytes
and the group is Stable. Timers (keyed per group/member, see `Timer`):

    heartbeat-<group>-<member>  session timeout (new members: new-member join timeout; members
                                handed an id by MEMBER_ID_REQUIRED: their session timeout)
    join-<group>                end of the join phase (rebalance timeout / initial delay)
    sync-<group>                members that got a JoinGroup response but never synced are
                                removed after the rebalance timeout

Not implemented: transactional offset commits' effect on groups; per-group dynamic configs.
"""
from __future__ import annotations

import asyncio
import logging

from pybroker.codec.messages import (HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
                                     SyncGroupResponse)
from pybroker.coordinator import records as rec
from pybroker.coordinator.classic import (COMPLETING_REBALANCE, DEAD, EMPTY, PREPARING_REBALANCE,
                                          STABLE, ClassicGroup, ClassicGroupMember)
from pybroker.coordinator.errors import (COORDINATOR_NOT_AVAILABLE, FENCED_INSTANCE_ID,
                                         GROUP_MAX_SIZE_REACHED, ILLEGAL_GENERATION,
                                         INCONSISTENT_GROUP_PROTOCOL, MEMBER_ID_REQUIRED,
                                         NOT_COORDINATOR, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID,
                                         GroupError, append_error_code)

log = logging.getLogger("pybroker.coordinator")
R = JoinGroupResponse
MEMBER_ID_REQUIRED_VERSION = 4   # JoinGroup v4+: a new dynamic member must rejoin with its id
SKIP_ASSIGNMENT_VERSION = 9      # JoinGroup v9+: a static leader may skip computing assignments


def resolve(fut, value) -> None:
    """Complete a parked request's future (a cancelled waiter is ignored)."""
    if fut is not None and not fut.done():
        fut.set_result(value)


def join_error(member_id, code) -> JoinGroupResponse:
    return R(error_code=code, member_id=member_id, protocol_name=None)


class ClassicGroupManager:
    def __init__(self, shard):
        self.shard = shard
        self.config = shard.config
        self.timer = shard.timer

    @property
    def now(self) -> int:
        return self.shard.clock.now_ms()

    # --- lookup ----------------------------------------------------------------------------
    def group(self, group_id) -> ClassicGroup:
        group = self.shard.groups.get(group_id)
        if group is None or group.type != "classic":
            raise GroupError(UNKNOWN_MEMBER_ID, f"group {group_id} not found")
        return group

    def get_or_create(self, group_id) -> ClassicGroup:
        group = self.shard.groups.get(group_id)
        if group is None:
            group = ClassicGroup(group_id, self.now)
            self.shard.groups[group_id] = group
        return group

    # --- JoinGroup ---------------------------------------------------------------------------
    async def join(self, info, req) -> JoinGroupResponse:
        fut = asyncio.get_running_loop().create_future()
        self._join(info, req, fut)
        return await asyncio.shield(fut)

    def _join(self, info, req, fut) -> None:
        groups = self.shard.groups
        existing = groups.get(req.group_id)
        if existing is not None and existing.type == "consumer":
            if not existing.is_empty():
                self.shard.consumer.classic_join(info, req, fut)
                return
            self.shard.consumer.delete_empty_for_conversion(existing)
        unknown = req.member_id == ""
        is_new_group = req.group_id not in groups
        if is_new_group and not unknown:
            resolve(fut, join_error(req.member_id, UNKNOWN_MEMBER_ID))
            return
        group = self.get_or_create(req.group_id)
        if not self._accept_joining_member(group, req.member_id):
            group.remove(req.member_id)
            resolve(fut, join_error("", GROUP_MAX_SIZE_REACHED))
        elif unknown:
            self._join_new_member(info, req, group, fut)
        else:
            self._join_existing_member(info, req, group, fut)
        if is_new_group:
            write = self.shard.write([rec.empty_group_metadata(group)])
            write.add_done_callback(lambda w: self._on_new_group_written(w, fut))

    @staticmethod
    def _on_new_group_written(write, fut):
        if not write.cancelled() and write.exception() is not None:
            resolve(fut, join_error("", append_error_code(write.exception())))

    def _accept_joining_member(self, group, member_id) -> bool:
        limit = self.config.group_max_size
        if group.is_in(EMPTY, DEAD):
            return True
        if group.is_in(PREPARING_REBALANCE):
            member = group.members.get(member_id)
            return (member is not None and member.is_awaiting_join) or group.num_awaiting_join < limit
        return member_id in group.members or len(group.members) < limit

    def _join_new_member(self, info, req, group, fut) -> None:
        protocols = [(p.name, p.metadata) for p in req.protocols]
        if group.is_in(DEAD):
            resolve(fut, join_error("", COORDINATOR_NOT_AVAILABLE))
            return
        if not group.supports_protocols(req.protocol_type, {n for n, _ in protocols}):
            resolve(fut, join_error("", INCONSISTENT_GROUP_PROTOCOL))
            return
        instance_id = req.group_instance_id
        new_id = group.generate_member_id(info.client_id, instance_id)
        if instance_id is not None:
            old_id = group.static_member_id(instance_id)
            if old_id is not None:
                self._replace_static_member(info, req, group, old_id, new_id, fut)
            else:
                self._add_member_and_rebalance(info, req, group, new_id, fut)
        elif info.api_version >= MEMBER_ID_REQUIRED_VERSION:
            group.pending_members.add(new_id)
            self.timer.schedule(_hb_key(group.group_id, new_id), req.session_timeout_ms,
                                lambda: self._expire_heartbeat(group.group_id, new_id))
            resolve(fut, join_error(new_id, MEMBER_ID_REQUIRED))
        else:
            self._add_member_and_rebalance(info, req, group, new_id, fut)

    def _join_existing_member(self, info, req, group, fut) -> None:
        member_id = req.member_id
        protocols = [(p.name, p.metadata) for p in req.protocols]
        if group.is_in(DEAD):
            resolve(fut, join_error(member_id, COORDINATOR_NOT_AVAILABLE))
            return
        if not group.supports_protocols(req.protocol_type, {n for n, _ in protocols}):
            resolve(fut, join_error(member_id, INCONSISTENT_GROUP_PROTOCOL))
            return
        if member_id in group.pending_members:
            self._add_member_and_rebalance(info, req, group, member_id, fut)
            return
        try:
            group.validate_member(member_id, req.group_instance_id)
        except GroupError as exc:
            resolve(fut, join_error(member_id, exc.code))
            return
        member = group.members[member_id]
        if group.is_in(PREPARING_REBALANCE):
            self._update_member_and_rebalance(req, group, member, fut)
        elif group.is_in(COMPLETING_REBALANCE):
            if member.matches(protocols):
                resolve(fut, self._current_generation(group, member_id,
                                                      with_members=group.is_leader(member_id)))
            else:
                self._update_member_and_rebalance(req, group, member, fut)
        elif group.is_in(STABLE):
            if group.is_leader(member_id) or not member.matches(protocols):
                self._update_member_and_rebalance(req, group, member, fut)
            else:
                resolve(fut, self._current_generation(group, member_id, with_members=False))
        else:
            resolve(fut, join_error(member_id, UNKNOWN_MEMBER_ID))

    def _current_generation(self, group, member_id, with_members, skip=False) -> JoinGroupResponse:
        return R(error_code=0, member_id=member_id, generation_id=group.generation_id,
                 protocol_type=group.protocol_type, protocol_name=group.protocol_name,
                 leader=group.leader_id or "", skip_assignment=skip,
                 members=self._member_list(group) if with_members else [])

    @staticmethod
    def _member_list(group) -> list:
        return [R.JoinGroupResponseMember(member_id=m.member_id,
                                          group_instance_id=m.group_instance_id,
                                          metadata=m.metadata(group.protocol_name))
                for m in group.members.values()]

    def _add_member_and_rebalance(self, info, req, group, member_id, fut) -> None:
        member = ClassicGroupMember(member_id, req.group_instance_id, info.client_id,
                                    info.client_host,
                                    _rebalance_timeout(req), req.session_timeout_ms,
                                    req.protocol_type, [(p.name, p.metadata) for p in req.protocols])
        member.is_new = True
        if group.is_in(PREPARING_REBALANCE) and group.previous_state == EMPTY:
            group.new_member_added = True
        group.add(member, fut)
        self._reschedule_heartbeat(group, member, self.config.new_member_join_timeout_ms)
        self._maybe_prepare_rebalance_or_complete_join(group, f"adding new member {member_id}")

    def _update_member_and_rebalance(self, req, group, member, fut) -> None:
        group.update_member(member, [(p.name, p.metadata) for p in req.protocols],
                            _rebalance_timeout(req), req.session_timeout_ms, fut)
        self._maybe_prepare_rebalance_or_complete_join(group, f"member {member.member_id} rejoins")

    def _replace_static_member(self, info, req, group, old_id, new_id, fut) -> None:
        """A known group.instance.id rejoins with no member id (a restarted static member): the
        old id is fenced and replaced. In Stable, if the group's protocol stays the same, no
        rebalance happens: the new id inherits the assignment (KIP-345)."""
        leader_before = group.leader_id
        member = group.replace_static_member(req.group_instance_id, old_id, new_id,
                                             self._fence_parked)
        self.timer.cancel(_hb_key(group.group_id, old_id))
        self._reschedule_heartbeat(group, member)
        old_state = (member.protocols, member.rebalance_timeout_ms, member.session_timeout_ms)
        group.update_member(member, [(p.name, p.metadata) for p in req.protocols],
                            _rebalance_timeout(req), req.session_timeout_ms, fut)
        if group.is_in(STABLE):
            if group.protocol_name == group.select_protocol():
                write = self.shard.write([rec.group_metadata(group, group.group_assignment())])
                write.add_done_callback(lambda w: self._on_static_member_stored(
                    w, info, group, member, old_id, old_state, leader_before, fut))
            else:
                self._maybe_prepare_rebalance_or_complete_join(
                    group, f"static member {new_id} changed the group's protocol")
        elif group.is_in(COMPLETING_REBALANCE):
            self._prepare_rebalance(group, f"static member {new_id} rejoined during sync")
        else:
            self._maybe_complete_join_phase(group)

    def _on_static_member_stored(self, write, info, group, member, old_id, old_state, leader_before,
                                 fut) -> None:
        if write.cancelled() or write.exception() is not None:
            code = append_error_code(write.exception()) if not write.cancelled() else NOT_COORDINATOR
            group.update_member(member, old_state[0], old_state[1], old_state[2], None)
            old = group.replace_static_member(member.group_instance_id, member.member_id, old_id,
                                              lambda m: None)
            self._reschedule_heartbeat(group, old)
            resolve(fut, R(error_code=code, member_id="", generation_id=group.generation_id,
                           protocol_type=group.protocol_type, protocol_name=group.protocol_name,
                           leader=leader_before or ""))
            return
        is_leader = group.is_leader(member.member_id)
        if info.api_version >= SKIP_ASSIGNMENT_VERSION:
            response = self._current_generation(group, member.member_id, with_members=is_leader,
                                                skip=is_leader)
        else:
            response = self._current_generation(group, member.member_id, with_members=False)
            response.leader = leader_before or ""
        self._complete_join_future(group, member, response)

    def _fence_parked(self, member) -> None:
        resolve(member.join_future, R(error_code=FENCED_INSTANCE_ID, member_id=member.member_id,
                                      protocol_name=None, leader=""))
        resolve(member.sync_future, SyncGroupResponse(error_code=FENCED_INSTANCE_ID))
        member.sync_future = None

    # --- rebalance ---------------------------------------------------------------------------
    def _maybe_prepare_rebalance_or_complete_join(self, group, reason) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group, reason)
        else:
            self._maybe_complete_join_phase(group)

    def _prepare_rebalance(self, group, reason) -> None:
        if group.is_in(COMPLETING_REBALANCE):
            self._reset_and_propagate_error(group, REBALANCE_IN_PROGRESS)
        self._remove_sync_expiration(group)
        initial = group.is_in(EMPTY)
        if initial:
            delay = self.config.group_initial_rebalance_delay_ms
            remaining = max(group.rebalance_timeout_ms() - delay, 0)
            self._schedule_initial_join(group.group_id, delay, remaining)
        group.transition_to(PREPARING_REBALANCE, self.now)
        log.info("preparing to rebalance group %s with old generation %d (%s)", group.group_id,
                 group.generation_id, reason)
        if not initial:
            if group.has_all_members_joined():
                self._complete_join(group)
            else:
                self.timer.schedule(_join_key(group.group_id), group.rebalance_timeout_ms(),
                                    lambda: self._complete_join_by_id(group.group_id))

    def _schedule_initial_join(self, group_id, delay, remaining) -> None:
        self.timer.schedule(_join_key(group_id), delay,
                            lambda: self._initial_join_due(group_id, delay, remaining))

    def _initial_join_due(self, group_id, delay, remaining) -> None:
        group = self.shard.groups.get(group_id)
        if group is None or group.type != "classic":
            return
        if group.new_member_added and remaining != 0:
            group.new_member_added = False
            new_delay = min(self.config.group_initial_rebalance_delay_ms, remaining)
            self._schedule_initial_join(group_id, new_delay, max(remaining - delay, 0))
        else:
            self._complete_join(group)

    def _maybe_complete_join_phase(self, group) -> None:
        if (group.is_in(PREPARING_REBALANCE) and group.previous_state != EMPTY
                and group.has_all_members_joined()):
            self._complete_join(group)

    def _complete_join_by_id(self, group_id) -> None:
        group = self.shard.groups.get(group_id)
        if group is not None and group.type == "classic":
            self._complete_join(group)

    def _complete_join(self, group) -> None:
        """End of the join phase: drop dynamic members that did not rejoin, start the next
        generation, and answer every parked JoinGroup (the leader gets the member list)."""
        self.timer.cancel(_join_key(group.group_id))
        for member in group.not_yet_rejoined():
            if not member.is_static:
                group.remove(member.member_id)
                self.timer.cancel(_hb_key(group.group_id, member.member_id))
        if group.is_in(DEAD):
            return
        if not group.maybe_elect_new_joined_leader() and group.members:
            self.timer.schedule(_join_key(group.group_id), group.rebalance_timeout_ms(),
                                lambda: self._complete_join_by_id(group.group_id))
            return
        group.init_next_generation(self.now)
        if group.is_in(EMPTY):
            write = self.shard.write([rec.group_metadata(group, {})])
            write.add_done_callback(_log_failure(f"empty metadata of group {group.group_id}"))
            return
        log.info("stabilized group %s generation %d with %d members", group.group_id,
                 group.generation_id, len(group.members))
        for member in list(group.members.values()):
            response = self._current_generation(group, member.member_id,
                                                with_members=group.is_leader(member.member_id))
            self._complete_join_future(group, member, response)
            self._reschedule_heartbeat(group, member)
            member.is_new = False
            group.pending_sync.add(member.member_id)
        generation = group.generation_id
        self.timer.schedule(_sync_key(group.group_id), group.rebalance_timeout_ms(),
                            lambda: self._expire_pending_sync(group.group_id, generation))

    def _complete_join_future(self, group, member, response) -> bool:
        if not member.is_awaiting_join:
            return False
        resolve(member.join_future, response)
        member.join_future = None
        group.num_awaiting_join -= 1
        return True

    def _expire_pending_sync(self, group_id, generation) -> None:
        group = self.shard.groups.get(group_id)
        if group is None or group.type != "classic" or group.generation_id != generation:
            return
        if group.is_in(COMPLETING_REBALANCE, STABLE) and group.pending_sync:
            missing = sorted(group.pending_sync)
            for member_id in missing:
                group.remove(member_id)
                self.timer.cancel(_hb_key(group_id, member_id))
            self._prepare_rebalance(group, f"members {missing} did not sync in time")

    def _remove_sync_expiration(self, group) -> None:
        group.pending_sync.clear()
        self.timer.cancel(_sync_key(group.group_id))

    def _reset_and_propagate_error(self, group, code) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, code)

    def _propagate_assignment(self, group, code) -> None:
        ok = code == 0
        for member in group.members.values():
            if member.sync_future is None:
                continue
            resolve(member.sync_future, SyncGroupResponse(
                error_code=code, assignment=member.assignment,
                protocol_type=group.protocol_type if ok else None,
                protocol_name=group.protocol_name if ok else None))
            member.sync_future = None
            self._reschedule_heartbeat(group, member)

    # --- SyncGroup ---------------------------------------------------------------------------
    async def sync(self, info, req) -> SyncGroupResponse:
        group = self.shard.groups.get(req.group_id)
        if group is None or group.is_empty():
            return SyncGroupResponse(error_code=UNKNOWN_MEMBER_ID)
        if group.type == "consumer":
            return await self.shard.consumer.classic_sync(info, req)
        fut = asyncio.get_running_loop().create_future()
        self._sync(group, req, fut)
        return await asyncio.shield(fut)

    def _sync(self, group, req, fut) -> None:
        error = self._validate_sync(group, req)
        if error:
            resolve(fut, SyncGroupResponse(error_code=error))
        elif group.is_in(PREPARING_REBALANCE):
            resolve(fut, SyncGroupResponse(error_code=REBALANCE_IN_PROGRESS))
        elif group.is_in(COMPLETING_REBALANCE):
            member = group.members[req.member_id]
            member.sync_future = fut
            self._remove_pending_sync(group, req.member_id)
            if group.is_leader(req.member_id):
                self._store_assignment(group, req)
        elif group.is_in(STABLE):
            self._remove_pending_sync(group, req.member_id)
            member = group.members[req.member_id]
            resolve(fut, SyncGroupResponse(error_code=0, assignment=member.assignment,
                                           protocol_type=group.protocol_type,
                                           protocol_name=group.protocol_name))

    def _validate_sync(self, group, req) -> int:
        if group.is_in(DEAD):
            return COORDINATOR_NOT_AVAILABLE
        try:
            group.validate_member(req.member_id, req.group_instance_id)
        except GroupError as exc:
            return exc.code
        if req.generation_id != group.generation_id:
            return ILLEGAL_GENERATION
        if _inconsistent(req.protocol_type, group.protocol_type) or \
                _inconsistent(req.protocol_name, group.protocol_name):
            return INCONSISTENT_GROUP_PROTOCOL
        return 0

    def _store_assignment(self, group, req) -> None:
        assignment = {a.member_id: a.assignment for a in req.assignments}
        for member_id in group.members:
            assignment.setdefault(member_id, b"")
        generation = req.generation_id
        write = self.shard.write([rec.group_metadata(group, assignment)])
        write.add_done_callback(lambda w: self._on_assignment_stored(w, group, generation,
                                                                     assignment))

    def _on_assignment_stored(self, write, group, generation, assignment) -> None:
        if not group.is_in(COMPLETING_REBALANCE) or group.generation_id != generation:
            return
        if write.cancelled() or write.exception() is not None:
            code = append_error_code(write.exception()) if not write.cancelled() else NOT_COORDINATOR
            self._reset_and_propagate_error(group, code)
            self._maybe_prepare_rebalance_or_complete_join(group, f"error {code} storing assignment")
            return
        for member in group.members.values():
            member.assignment = assignment.get(member.member_id, b"")
        self._propagate_assignment(group, 0)
        group.transition_to(STABLE, self.now)

    def _remove_pending_sync(self, group, member_id) -> None:
        group.pending_sync.discard(member_id)
        if not group.is_in(COMPLETING_REBALANCE, STABLE) or not group.pending_sync:
            self.timer.cancel(_sync_key(group.group_id))

    # --- Heartbeat ---------------------------------------------------------------------------
    def heartbeat(self, info, req) -> HeartbeatResponse:
        group = self.shard.groups.get(req.group_id)
        if group is None:
            return HeartbeatResponse(error_code=UNKNOWN_MEMBER_ID)
        if group.type == "consumer":
            return self.shard.consumer.classic_heartbeat(info, req)
        if group.is_in(DEAD):
            return HeartbeatResponse(error_code=COORDINATOR_NOT_AVAILABLE)
        try:
            group.validate_member(req.member_id, req.group_instance_id)
        except GroupError as exc:
            return HeartbeatResponse(error_code=exc.code)
        if req.generation_id != group.generation_id:
            return HeartbeatResponse(error_code=ILLEGAL_GENERATION)
        if group.is_in(EMPTY):
            return HeartbeatResponse(error_code=UNKNOWN_MEMBER_ID)
        self._reschedule_heartbeat(group, group.members[req.member_id])
        if group.is_in(PREPARING_REBALANCE):
            return HeartbeatResponse(error_code=REBALANCE_IN_PROGRESS)
        return HeartbeatResponse(error_code=0)

    def _reschedule_heartbeat(self, group, member, timeout_ms=None) -> None:
        group_id, member_id = group.group_id, member.member_id
        delay = member.session_timeout_ms if timeout_ms is None else timeout_ms
        self.timer.schedule(_hb_key(group_id, member_id), delay,
                            lambda: self._expire_heartbeat(group_id, member_id))

    def touch(self, group, member_id) -> None:
        """An offset commit from a member keeps its session alive (Stable/PreparingRebalance)."""
        member = group.members.get(member_id)
        if member is not None and group.is_in(STABLE, PREPARING_REBALANCE):
            self._reschedule_heartbeat(group, member)

    def _expire_heartbeat(self, group_id, member_id) -> None:
        group = self.shard.groups.get(group_id)
        if group is None or group.type != "classic" or group.is_in(DEAD):
            return
        if member_id in group.pending_members:
            group.remove(member_id)
            if group.is_in(PREPARING_REBALANCE) and group.has_all_members_joined():
                self._complete_join(group)
            return
        member = group.members.get(member_id)
        if member is not None and not member.has_satisfied_heartbeat():
            log.info("member %s of group %s failed its session timeout", member_id, group_id)
            self._remove_member_and_update_group(group, member, "session timeout")

    def _remove_member_and_update_group(self, group, member, reason) -> None:
        self._complete_join_future(group, member, join_error("", UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)
        if group.is_in(STABLE, COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance_or_complete_join(group, reason)
        elif group.is_in(PREPARING_REBALANCE) and group.has_all_members_joined():
            self._complete_join(group)

    # --- LeaveGroup --------------------------------------------------------------------------
    def leave(self, info, group_id, identities) -> LeaveGroupResponse:
        """identities: [(member_id, group_instance_id, reason)] — v0-2 send one, v3+ a batch."""
        group = self.shard.groups.get(group_id)
        if group is None:
            raise GroupError(UNKNOWN_MEMBER_ID, f"group {group_id} not found")
        if group.type == "consumer":
            return self.shard.consumer.classic_leave(info, group, identities)
        if group.is_in(DEAD):
            return LeaveGroupResponse(error_code=COORDINATOR_NOT_AVAILABLE)
        responses = [self._leave_one(group, m, i) for m, i, _ in identities]
        if any(r.error_code == 0 for r in responses):
            if group.is_in(STABLE, COMPLETING_REBALANCE):
                self._maybe_prepare_rebalance_or_complete_join(group, "members left")
            elif group.is_in(PREPARING_REBALANCE):
                self._maybe_complete_join_phase(group)
        return LeaveGroupResponse(error_code=0, members=responses)

    def _leave_one(self, group, member_id, instance_id):
        def answer(code=0):
            return LeaveGroupResponse.MemberResponse(member_id=member_id,
                                                     group_instance_id=instance_id,
                                                     error_code=code)
        if member_id == "":
            target = group.static_member_id(instance_id) if instance_id is not None else None
            if target is None:
                return answer(UNKNOWN_MEMBER_ID)
            self._remove_leaving_member(group, target)
            return answer()
        if member_id in group.pending_members:
            group.remove(member_id)
            self.timer.cancel(_hb_key(group.group_id, member_id))
            return answer()
        try:
            group.validate_member(member_id, instance_id)
        except GroupError as exc:
            return answer(exc.code)
        self._remove_leaving_member(group, member_id)
        return answer()

    def _remove_leaving_member(self, group, member_id) -> None:
        member = group.members[member_id]
        self.timer.cancel(_hb_key(group.group_id, member_id))
        self._complete_join_future(group, member, join_error("", UNKNOWN_MEMBER_ID))
        group.remove(member_id)

    # --- load / unload / delete --------------------------------------------------------------
    def replay(self, key, value) -> None:
        """A GroupMetadata record read back from the log."""
        group_id = key.group
        if value is None:
            self.shard.remove_group(group_id)
            return
        group = ClassicGroup(group_id, self.now, state=STABLE if value.members else EMPTY,
                             generation_id=value.generation,
                             protocol_type=value.protocol_type or None,
                             protocol_name=value.protocol, leader_id=value.leader,
                             state_timestamp_ms=value.current_state_timestamp)
        for m in value.members:
            rebalance = m.session_timeout if m.rebalance_timeout == -1 else m.rebalance_timeout
            group.add(ClassicGroupMember(m.member_id, m.group_instance_id, m.client_id,
                                         m.client_host, rebalance, m.session_timeout,
                                         value.protocol_type, [(value.protocol, m.subscription)],
                                         m.assignment))
        group.leader_id = value.leader
        group.subscribed_topics = group.compute_subscribed_topics()
        self.shard.replace_group(group)

    def on_loaded(self, group) -> None:
        for member in group.members.values():
            self._reschedule_heartbeat(group, member)
        if len(group.members) > self.config.group_max_size:
            self._prepare_rebalance(group, "loaded group is over group.max.size")

    def abandon(self, group, code) -> None:
        """The group stops being a classic group (online upgrade): answer every parked
        JoinGroup/SyncGroup with `code` and drop the group's classic timers."""
        for member in group.members.values():
            self._complete_join_future(group, member, join_error(member.member_id, code))
            resolve(member.sync_future, SyncGroupResponse(error_code=code))
            member.sync_future = None
            self.timer.cancel(_hb_key(group.group_id, member.member_id))
        self.timer.cancel(_join_key(group.group_id))
        self.timer.cancel(_sync_key(group.group_id))

    def on_unloaded(self, group) -> None:
        previous = group.state
        group.transition_to(DEAD, self.now)
        for member in group.members.values():
            if previous == PREPARING_REBALANCE:
                self._complete_join_future(group, member, join_error(member.member_id,
                                                                     NOT_COORDINATOR))
            elif previous in (COMPLETING_REBALANCE, STABLE):
                resolve(member.sync_future, SyncGroupResponse(error_code=NOT_COORDINATOR))
                member.sync_future = None


def _rebalance_timeout(req) -> int:
    """JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout."""
    return req.session_timeout_ms if req.rebalance_timeout_ms == -1 else req.rebalance_timeout_ms


def _inconsistent(requested, current) -> bool:
    return requested is not None and current is not None and requested != current


def _hb_key(group_id, member_id) -> str:
    return f"heartbeat-{group_id}-{member_id}"


def _join_key(group_id) -> str:
    return f"join-{group_id}"


def _sync_key(group_id) -> str:
    return f"sync-{group_id}"


def _log_failure(what):
    def callback(write):
        if not write.cancelled() and write.exception() is not None:
            log.warning("failed to write %s: %s", what, write.exception())
    return callback
