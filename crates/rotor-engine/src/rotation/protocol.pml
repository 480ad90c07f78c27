/*
 * Rotor's rotation protocol, as a Promela model for spin. scripts/check-protocol
 * checks it (and `scripts/check-protocol --findings` shows the known flaws below).
 *
 * What it models: one secret rotated by the database rotator's alternating-users
 * strategy on two database users U0 and U1, driven by the durable runner on two
 * server nodes that share the store and the scheduler lease, with the adoption
 * gates (wait_for_consumers, on_timeout = fail, retire_previous on), while two
 * consumers use the secret's credential and an operator may cancel.
 *
 * A version's token is its id. The secret starts as an earlier rotation left it: v1
 * AWSCURRENT for U0, v0 AWSPREVIOUS for U1, one consumer still on v0, the other yet
 * to read; rotations make v2 and v3. A version's password generation is its id too
 * (createSecret draws one password per token).
 *
 * Bounds (each can be set with -D): MAXROT rotations started, new or reattempted
 * (2); MAXATT attempts each (2); MAXNF node faults, a node killed or the lease lost
 * by a live holder (1); MAXFAIL failed steps (1); MAXDEATH consumers killed (1); one
 * cancellation. Time is abstract: "a resume time comes", "a gate's adoption
 * timeout elapses", "a killed holder's lease runs out" are moves of the clock and
 * timer processes, which weak fairness makes happen eventually.
 *
 * What mirrors what in crates/rotor-engine/src/rotation:
 *   proctype node         a server: scheduler::Rotations::spawn's loop and the
 *                         runner task it drives (Rotations::active: one per
 *                         rotation); kill -9 at any point (memory lost, store kept)
 *     inline renew        scheduler::Rotations::renew_lease (Mutation::Lease)
 *     inline schedule     scheduler::Rotations::tick and start_scheduled: drive the
 *                         running rotation when due, else operations::reattempt of
 *                         the one that left AWSPENDING (saved under the holder's
 *                         epoch, closing gates an earlier attempt left open), or
 *                         operations::start (Mutation::StartRotation, fenced)
 *     inline load         the head of runner::run's loop (load, stop unless Running
 *                         and due, the lease epoch) and gates::check, which
 *                         runner::run calls before setSecret and retirePrevious
 *                         (flush_reads first; retirePrevious waits READS_SETTLE
 *                         after finishSecret: see A2)
 *     inline run_step     the step, as database.rs does it for alternating users:
 *                         create; set_secret (Database::set: the master's
 *                         driver.ensure_clone, new password and LOGIN); test;
 *                         finish (rotators.rs Ctx::finish); retire (NOLOGIN
 *                         for AWSPREVIOUS's user)
 *     phases REREAD, RECORD   runner::run after the step: a cancellation during
 *                         the step wins; record the step before the next one
 *                         starts; a failed retirePrevious ends the rotation
 *                         Succeeded (event rotation.retire_failed)
 *     inline succeed      runner::succeed
 *     inline failed_attempt   runner::failed_attempt (its revert does nothing for
 *                         alternating users: the user it changed was not current)
 *     phases WAITS, GFAIL, GSKIP   runner::run on gates::check's Wait, Fail
 *                         (runner::give_up) and Skip
 *   inline save           the store's Mutation::SaveRotation, behind its epoch
 *                         fence (FENCE_OK: sqlite/postgres rotation.rs `fence`;
 *                         epoch 0 is unfenced)
 *   proctype world        operations::Rotations::cancel (CancelRotateSecret,
 *                         saved with epoch 0: unfenced), a lease lost by a live
 *                         node, a consumer killed
 *   proctype consumers    applications using the secret (agent, `rotor run`, SDK)
 *   proctype clock, timer time passing
 *
 * Assumptions of the checked configuration; a -D switch drops each, and the
 * FINDINGS at the end say what spin then finds:
 *   A1  A step's change (to the database, or to the store's labels) lands only
 *       while its node still holds the scheduler lease; otherwise the step fails.
 *       Rotor does not ensure this today: the lease lasts 15 s, a step may take
 *       step_timeout = 120 s, and neither the database nor ctx.finish is fenced.
 *       (-DSTALE_STEPS: a fenced-out node's step lands whenever it gets to it.)
 *   A2  A read is in the registry before a gate that could invalidate the version
 *       read passes. consumers::ReadTracker notes reads in memory and writes them
 *       every 250 ms; gates::check writes its own node's first, and the
 *       retirePrevious gate passes no sooner than READS_SETTLE = 1 s after
 *       finishSecret, so a read of the old AWSCURRENT made before it moved has
 *       landed, from every node (a report older than the stored row changes
 *       nothing, so rows do not go back). Not covered: a read lost because its
 *       server died before writing it, or a write delayed over 1 s.
 *       (-DLATE_REGISTRATION: reads land later, and the gates wait for them, but a
 *       read may escape that wait, landing only at a later write or heartbeat.)
 *   A3  Each consumer has its own registry row. (-DSHARED_READER_ROW: both are
 *       readers behind one PRINCIPAL@ADDRESS, so they share one row.)
 *   A4  A consumer is gone only when it is: its lease runs out because it died,
 *       not because it paused, and then none of its rows (reader rows included)
 *       counts any more. A reader row that expires (assume_adopted_after_secs)
 *       while its reader still uses the version is not modelled.
 *   A5  The runner's reads see the store's latest state. (It reads the record and
 *       labels through the service's cache, which another node's writes invalidate
 *       only when their event arrives; not modelled.)
 *   -DBROKEN removes the gate before setSecret: creds_valid must then fail.
 *   -DNO_RETIRE turns retire_previous off. -DCANCEL_RACE splits the cancellation's
 *   read and save, as they are in operations.rs (the checked model does both in
 *   one step: splitting them only widens the finished_stays flaw below).
 */

/* ---- bounds ---- */
#ifndef MAXROT
#define MAXROT   2   /* rotations started, new or reattempted (at most 2: v2, v3) */
#endif
#ifndef MAXATT
#define MAXATT   2   /* Settings::max_attempts */
#endif
#ifndef MAXNF
#define MAXNF    1   /* node faults: a node killed, or the lease lost by a live node */
#endif
#ifndef MAXFAIL
#define MAXFAIL  1   /* steps that fail (an error, a refused login, the step timeout) */
#endif
#ifndef MAXDEATH
#define MAXDEATH 1   /* consumers killed */
#endif

#define NV     4     /* versions v0 .. v3 */
#define NOV    4     /* no version */
#define NONODE 2     /* nobody holds the lease */

/* staging labels, as bits of lab[v] */
#define CUR  1       /* AWSCURRENT */
#define PREV 2       /* AWSPREVIOUS */
#define PEND 4       /* AWSPENDING */

/* RotationStatus (0: no record) */
#define RUN   1
#define SUCC  2
#define FAIL  3
#define CANC  4
#define finished(s) ((s) >= SUCC)

/* Step */
#define CREATE 0
#define SET    1
#define TEST   2
#define FINISH 3
#define RETIRE 4
#ifdef NO_RETIRE
#define LAST FINISH
#else
#define LAST RETIRE  /* retire_previous: retirePrevious follows finishSecret */
#endif

/* ---- the secret's versions, in the store ---- */
byte lab[NV];        /* staging labels */
bit  made[NV];       /* the version exists (createSecret stored it) */
bit  user[NV];       /* the database user its credential names */

#define HOLDS(v, L) ((lab[v] & (L)) != 0)
#define NCUR (HOLDS(0, CUR) + HOLDS(1, CUR) + HOLDS(2, CUR) + HOLDS(3, CUR))
#define HOLDER(L) (HOLDS(0, L) -> 0 : (HOLDS(1, L) -> 1 : (HOLDS(2, L) -> 2 : (HOLDS(3, L) -> 3 : NOV))))
#define CURV  HOLDER(CUR)
#define PREVV HOLDER(PREV)
#define PENDV HOLDER(PEND)

/* ---- the database ---- */
byte pw[2];          /* the generation (version id) of each user's password */
bit  login[2];       /* the user may log in (retirement sets NOLOGIN) */

/* ---- rotation records, in the store, by token ---- */
byte st[NV];         /* status */
byte step[NV];       /* the unfinished step */
byte att[NV];        /* attempt */
bit  wait[NV];       /* resume_at is ahead (a backoff, or a gate waiting) */
bit  gate[NV];       /* a gate's start is recorded (a restarted server keeps it) */
bit  gexp[NV];       /* ... and the adoption timeout has elapsed since */
bit  sched_on = 1;   /* RotationMeta::enabled (a cancellation turns it off) */

/* ---- the scheduler lease, in the store ---- */
byte lholder = NONODE;
bit  orphan;         /* its holder was killed: the restarted node has a new id
                      * (HOST:PID:RANDOM) and cannot renew it; it must run out */
bit  ecur[2];        /* the epoch node n's runner pass loaded (r.epoch) is the lease's */

/* Epochs are abstracted to whether they are the lease's epoch now: the fence
 * compares nothing else. A new epoch makes every copy of an epoch old. The epoch
 * stored in a record is not modelled: every save sets its own (the runner the
 * epoch of its pass, start and reattempt the holder's, cancel 0: unfenced). */
#define FENCE_OK(x) (x)
inline bump() {
  ecur[0] = 0; ecur[1] = 0
}

/* ---- consumers ---- */
bit  live[2];        /* not gone */
byte ver[2];         /* the version whose credential it holds and logs in with */
byte reg[2];         /* the registry's row: the version it is known to use */
#ifdef LATE_REGISTRATION
bit  inflight[2];    /* its last read is noted on a server, not yet written */
#endif

#ifdef SHARED_READER_ROW
#define ROW(c) 0
#else
#define ROW(c) c
#endif
#define USES(c, v) (live[c] && reg[ROW(c)] == (v))
/* gates::check's question: does a live consumer use version v? */
#define BUSY(v) ((v) != NOV && (USES(0, v) || USES(1, v)))
/* the credential consumer c holds logs in */
#define VALID(c) (!live[c] || ver[c] == NOV || (pw[user[ver[c]]] == ver[c] && login[user[ver[c]]]))

/* ---- bookkeeping: the bounds' counters, and what the properties watch ---- */
byte starts;         /* rotations started or reattempted */
byte ntok = 2;       /* the next new rotation's token */
byte nodefaults, fails, deaths, cancels;
bit  ready;          /* init has set the first state (the properties start there) */
byte succ[NV];       /* Succeeded recorded, per token */
byte moved[NV];      /* finishSecret moved AWSCURRENT onto the token */
bit  overwrote;      /* a save landed on a finished record */
bit  failed_moved;   /* Failed recorded while AWSCURRENT is on the token */

#define RUNNING (st[2] == RUN || st[3] == RUN)
#define RUNNING_TOKEN (st[2] == RUN -> 2 : (st[3] == RUN -> 3 : 0))
/* The secret is due, nothing runs, and the bound allows one more rotation: the
 * scheduler should start or reattempt one. */
#define DUE (sched_on && !RUNNING && starts < MAXROT)

/* An optional process may idle for ever, which weak fairness then counts as a move
 * (spin refuses a constant `skip` loop, hence a condition that always holds). */
#define IDLE ready

/* Takes label L off whichever version has it. */
inline drop(L) {
  lab[0] = lab[0] & ~(L); lab[1] = lab[1] & ~(L); lab[2] = lab[2] & ~(L); lab[3] = lab[3] & ~(L)
}

/* Moves label L onto version v. */
inline take(L, v) {
  drop(L); lab[v] = lab[v] | (L)
}

/* Mutation::SaveRotation, once its fence passed: it overwrites the row with the
 * caller's copy (status, step, attempt, resume_at, gates, epoch), whatever status
 * the row has now. */
inline save(t, s, stp, a, w, g) {
  if
  :: finished(st[t]) -> overwrote = 1
  :: else
  fi;
  if
  :: !(g) || !gate[t] -> gexp[t] = 0   /* a new gate starts its own clock */
  :: else
  fi;
  st[t] = s; step[t] = stp; att[t] = a; wait[t] = w; gate[t] = g
}

/* scheduler::Rotations::renew_lease: held while this node holds it; a lease
 * nobody holds yet is taken under a new epoch. (Leases that run out are taken in
 * world and clock.) */
inline renew() {
  if
  :: lholder == n && !orphan -> lead = 1; mcur = 1
  :: lholder == NONODE -> lholder = n; bump(); lead = 1; mcur = 1
  :: else -> lead = 0; mcur = 0
  fi
}

/* The rest of scheduler::Rotations::tick, on the lease holder: drive the running
 * rotation unless its resume time is ahead; with none running, start the due
 * secret's rotation: reattempt the one that left AWSPENDING, or start a new one. */
inline schedule() {
  t = RUNNING_TOKEN;
  if
  :: !lead -> skip
  :: t != 0 && !wait[t] && tok == 0 -> tok = t   /* drive */
  :: t == 0 && sched_on && starts < MAXROT ->
     t = PENDV;
     if
     :: t != NOV && !HOLDS(t, CUR) ->
        /* operations::reattempt: Running from createSecret, attempt 1, under the
         * holder's epoch; a gate an earlier attempt left open is closed
         * ("abandoned"), so the next one starts its own clock */
        if
        :: FENCE_OK(mcur) ->
           st[t] = RUN; step[t] = CREATE; att[t] = 1; wait[t] = 0; gate[t] = 0; gexp[t] = 0;
           starts++; tok = t
        :: else   /* Fenced: the next tick tries again */
        fi
     :: else ->
        /* operations::start: StartRotation under the holder's epoch; AWSPENDING
         * comes off any other version */
        if
        :: FENCE_OK(mcur) ->
           drop(PEND);
           st[ntok] = RUN; step[ntok] = CREATE; att[ntok] = 1;
           starts++; tok = ntok; ntok++
        :: else
        fi
     fi
  :: else
  fi;
  t = 0
}

#ifdef LATE_REGISTRATION
/* A noted read of a version AWSCURRENT has since left was made before finishSecret
 * moved it: a gate lets it land first (flush_reads writes this node's; before
 * retirePrevious, READS_SETTLE gives the other nodes' writes time; before
 * setSecret, such reads are older than the last finishSecret). */
inline land(c) {
  if
  :: inflight[c] && ver[c] != CURV -> reg[ROW(c)] = ver[c]; inflight[c] = 0
  :: else
  fi
}
#endif

/* The head of runner::run's loop: load the record; stop unless it is Running and
 * due; only the lease holder advances it, under the epoch it holds now
 * (r.epoch = epoch). Then gates::check, before setSecret and retirePrevious: go on
 * when no live consumer uses AWSPREVIOUS (setSecret changes its user's password,
 * retirePrevious disables that user); otherwise wait, keeping the recorded start;
 * once the adoption timeout has elapsed, fail the rotation (setSecret) or skip the
 * retirement (retirePrevious). (The gates' wait for noted reads to be written is
 * A2; with -DLATE_REGISTRATION it is land.) */
inline load() {
  if
  :: tok == 0 -> skip
  :: st[tok] != RUN || wait[tok] || !lead -> tok = 0
  :: else ->
     ecur[n] = mcur; rs = step[tok]; ra = att[tok];
     go = 0;
#ifndef BROKEN
     if
     :: rs == SET || rs == RETIRE ->
#else
     if
     :: rs == RETIRE ->          /* BROKEN: no gate before setSecret */
#endif
#ifdef LATE_REGISTRATION
        land(0); land(1);
#endif
        rd = PREVV;
        if
        :: !BUSY(rd) -> go = 0
        :: else ->
           if
           :: gate[tok] && gexp[tok] -> go = 2   /* timed out */
           :: else -> go = 1                     /* wait */
           fi
        fi;
        rd = 0
     :: else
     fi;
     /* database set first reads both versions: the pending one must name the
      * other user than AWSCURRENT's */
     if
     :: rs == SET -> ok = (made[tok] && user[tok] != user[CURV])
     :: else
     fi
  fi
}

/* A step's change to the store or the database: under A1 it lands only while the
 * lease is still this node's (else the step fails); with -DSTALE_STEPS, whenever
 * the node gets to it. */
#ifdef STALE_STEPS
#define EFFECT(x) x
#else
#define EFFECT(x) if :: lholder == n && !orphan -> x :: else -> ok = 0 fi
#endif

/* Step rs of rotation tok, as database.rs does it for alternating users. */
inline run_step() {
  if
  :: rs != SET -> ok = 1
  :: else
  fi;
  if
  :: fails < MAXFAIL -> fails++; ok = 0   /* the step fails */
  :: rs == CREATE ->
     /* nothing when the token's version exists; else AWSCURRENT's value with the
      * other user and a new password, stored under the token with AWSPENDING */
     EFFECT(
       if
       :: !made[tok] -> made[tok] = 1; user[tok] = 1 - user[CURV]; take(PEND, tok)
       :: else
       fi
     )
  :: rs == SET ->
     /* the master sets the pending user's password and (re-)enables its login: a
      * credential of that user held by anyone stops working */
     if
     :: ok -> EFFECT(pw[user[tok]] = tok; login[user[tok]] = 1)
     :: else
     fi
  :: rs == TEST -> ok = (pw[user[tok]] == tok && login[user[tok]])
  :: rs == FINISH ->
     /* ctx.finish: unless AWSCURRENT is on the token, move it there with
      * RemoveFromVersionId = its holder, AWSPREVIOUS following to the version it
      * left: one store transaction */
     EFFECT(
       rd = CURV;
       if
       :: rd != tok && made[tok] ->
          take(PREV, rd); lab[rd] = lab[rd] & ~CUR; lab[tok] = lab[tok] | CUR; moved[tok]++
       :: else
       fi;
       rd = 0
     )
  :: rs == RETIRE ->
     /* Database::retire: reads AWSCURRENT and AWSPREVIOUS, refuses unless they name
      * the two users, then NOLOGIN for AWSPREVIOUS's user */
     EFFECT(
       rd = PREVV;
       if
       :: rd != NOV && user[rd] != user[CURV] -> login[user[rd]] = 0
       :: else -> ok = 0
       fi;
       rd = 0
     )
  fi
}

/* runner::failed_attempt: retry the whole rotation from createSecret after a
 * backoff, or, at the last attempt, record Failed ("AWSCURRENT is unchanged"). A
 * refused save (Fenced) stops the runner. (A failed retirePrevious does not come
 * here: AWSCURRENT has moved, the rotation succeeds; see RECORD.) */
inline failed_attempt() {
  if
  :: FENCE_OK(ecur[n]) ->
     if
     :: ra < MAXATT -> save(tok, RUN, CREATE, ra + 1, 1, 0)
     :: else ->
        if
        :: HOLDS(tok, CUR) -> failed_moved = 1
        :: else
        fi;
        save(tok, FAIL, rs, ra, 0, 0)
     fi
  :: else
  fi;
  tok = 0
}

/* runner::succeed: AWSCURRENT must be on the token; record Succeeded and take
 * AWSPENDING off the version (release_pending), in one save. */
inline succeed() {
  if
  :: HOLDS(tok, CUR) ->
     if
     :: FENCE_OK(ecur[n]) -> save(tok, SUCC, rs, ra, 0, 0); succ[tok]++; lab[tok] = lab[tok] & ~PEND
     :: else
     fi;
     tok = 0
  :: else -> failed_attempt()
  fi
}

/* A node's next move: a scheduler pass (with the head of its runner's pass), then,
 * while it drives a rotation, the rest of the runner's pass, one atomic move per
 * store call or change. The order of tick and runner does not matter: a pass uses
 * the epoch it loaded, whatever the lease does meanwhile. */
#define TICK   0   /* renew, schedule, load and gate check */
#define WAITS  1   /* the gate waits: save, stop */
#define GFAIL  2   /* the setSecret gate timed out: save Failed, stop */
#define GSKIP  3   /* the retirePrevious gate timed out: succeed without retiring */
#define STEP   4   /* the step */
#define REREAD 5   /* re-read: a cancellation during the step wins */
#define RECORD 6   /* record the step done, or succeed, or a failed attempt */

inline reset() {
  ph = TICK; ecur[n] = 0; rs = 0; ra = 0; ok = 0
}

proctype node(byte n) {
  byte ph;           /* the next move */
  byte tok;          /* the rotation its runner drives (0: none) */
  byte rs, ra;       /* r.step and r.attempt as loaded */
  bit  ok;           /* the step's result (setSecret: its check, made at load) */
  bit  lead, mcur;   /* renew_lease's answer: Some(epoch), which is the lease's */
  byte rd, go, t;    /* scratch */

end_node:
  do
  :: atomic {
       ph == TICK -> renew(); schedule(); load();
       if
       :: tok == 0 -> reset()
       :: tok != 0 && go == 0 -> ph = STEP
       :: tok != 0 && go == 1 -> ph = WAITS
       :: tok != 0 && go == 2 && rs == SET -> ph = GFAIL
       :: tok != 0 && go == 2 && rs == RETIRE -> ph = GSKIP
       fi;
       go = 0; lead = 0; mcur = 0
     }
  :: atomic {
       /* the gate waits: record it (its start stays) and a resume time; stop */
       ph == WAITS ->
       if
       :: FENCE_OK(ecur[n]) -> save(tok, RUN, rs, ra, 1, 1)
       :: else
       fi;
       tok = 0; reset()
     }
  :: atomic {
       /* on_timeout = fail (runner::give_up): Failed, AWSCURRENT unchanged, the
        * pending version left */
       ph == GFAIL ->
       if
       :: FENCE_OK(ecur[n]) ->
          if
          :: HOLDS(tok, CUR) -> failed_moved = 1
          :: else
          fi;
          save(tok, FAIL, rs, ra, 0, 0)
       :: else
       fi;
       tok = 0; reset()
     }
  :: atomic { ph == GSKIP -> succeed(); reset() }
  :: atomic { ph == STEP -> run_step(); ph = REREAD }
  :: atomic {
       ph == REREAD ->
       if
       :: st[tok] != RUN -> tok = 0; reset()   /* stop without recording the step */
       :: else -> ph = RECORD
       fi
     }
  :: atomic {
       ph == RECORD ->
       if
       :: ok && rs != LAST ->
          /* the step is recorded before the next one starts */
          if
          :: FENCE_OK(ecur[n]) -> save(tok, RUN, rs + 1, ra, 0, 0)
          :: else -> tok = 0   /* Fenced: the runner stops */
          fi
       :: ok && rs == LAST -> succeed()
       /* a failed retirePrevious: the previous credential stays valid, AWSCURRENT
        * has moved; event rotation.retire_failed, and the rotation succeeds */
       :: !ok && rs == RETIRE -> succeed()
       :: !ok && rs != RETIRE -> failed_attempt()
       fi;
       reset()
     }
  :: atomic {
       /* kill -9, at any point: the store keeps everything, the node's memory is
        * gone; a lease it held is not renewed (the restarted node has a new id) */
       nodefaults < MAXNF -> nodefaults++;
       if
       :: lholder == n -> orphan = 1
       :: else
       fi;
       tok = 0; reset()
     }
  od
}

/* The consumers: each logs in with the version it holds, in a loop (VALID says
 * every such login works), and reads AWSCURRENT again whenever it likes (late
 * adoption, or never). */
inline adopt(c) {
  live[c] && ver[c] != CURV -> ver[c] = CURV;
#ifndef LATE_REGISTRATION
  reg[ROW(c)] = ver[c]   /* the read is in the registry before a gate looks (A2) */
#else
  inflight[c] = 1        /* the server that served it notes it */
#endif
}

#ifdef LATE_REGISTRATION
/* A noted read: its server writes it (the ReadTracker's flush), or it escapes the
 * gates' wait (its server died before writing it, or the write took over 1 s) and
 * the registry learns of it later, at the late write or the consumer's heartbeat,
 * or never. */
inline written(c) {
  inflight[c] -> reg[ROW(c)] = ver[c]; inflight[c] = 0
}
inline escapes(c) {
  inflight[c] -> inflight[c] = 0
}
inline heartbeat(c) {
  live[c] && !inflight[c] && reg[ROW(c)] != ver[c] -> reg[ROW(c)] = ver[c]
}
#endif

proctype consumers() {
end_consumers:
  do
  :: IDLE
  :: atomic { adopt(0) }
  :: atomic { adopt(1) }
#ifdef LATE_REGISTRATION
  :: atomic { written(0) }
  :: atomic { written(1) }
  :: atomic { escapes(0) }
  :: atomic { escapes(1) }
  :: atomic { heartbeat(0) }
  :: atomic { heartbeat(1) }
#endif
  od
}

/* What may happen at any time, or never, a bounded number of times:
 *  - operations::cancel (CancelRotateSecret), once: it reads the running rotation
 *    and saves it Cancelled with epoch 0, which the fence never refuses, turning
 *    the schedule off;
 *  - the scheduler lease changes hands although its holder lives (it was too slow
 *    to renew): it ran out and a node, either one, took it under a new epoch; the
 *    holder learns it at its next renewal (a node killed is the node's own move);
 *  - a consumer is killed: its lease runs out and it is gone; it uses nothing. */
active proctype world() {
  byte t;
#ifdef CANCEL_RACE
  byte cs, ca;
  bit cg;
#endif
#ifdef LATE_REGISTRATION
#define GONE(c) inflight[c] = 0
#else
#define GONE(c) skip
#endif
end_world:
  do
  :: IDLE
  :: atomic {
       cancels == 0 && RUNNING -> cancels++; t = RUNNING_TOKEN;
#ifndef CANCEL_RACE
       save(t, CANC, step[t], att[t], 0, gate[t]); sched_on = 0;
       t = 0
     }
#else
       cs = step[t]; ca = att[t]; cg = gate[t]
     }
     atomic {
       save(t, CANC, cs, ca, 0, cg); sched_on = 0;
       t = 0; cs = 0; ca = 0; cg = 0
     }
#endif
  :: atomic { nodefaults < MAXNF && lholder != NONODE && !orphan -> nodefaults++; lholder = 0; bump() }
  :: atomic { nodefaults < MAXNF && lholder != NONODE && !orphan -> nodefaults++; lholder = 1; bump() }
  :: atomic { live[0] && deaths < MAXDEATH -> live[0] = 0; ver[0] = NOV; GONE(0); deaths++ }
  :: atomic { live[1] && deaths < MAXDEATH -> live[1] = 0; ver[1] = NOV; GONE(1); deaths++ }
  od
}

/* Time passing: what must happen eventually. Weak fairness is per process, so each
 * kind of deadline has its own: a rotation's resume time comes, and a killed
 * holder's lease runs out (a node takes it under a new epoch) ... */
active proctype clock() {
end_clock:
  do
  :: atomic { st[2] == RUN && wait[2] -> wait[2] = 0 }
  :: atomic { st[3] == RUN && wait[3] -> wait[3] = 0 }
  :: atomic { orphan -> orphan = 0; lholder = 0; bump() }
  :: atomic { orphan -> orphan = 0; lholder = 1; bump() }
  od
}

/* ... and a gate's adoption timeout elapses. */
active proctype timer() {
end_timer:
  do
  :: atomic { gate[2] && !gexp[2] -> gexp[2] = 1 }
  :: atomic { gate[3] && !gexp[3] -> gexp[3] = 1 }
  od
}

init {
  atomic {
    /* after an earlier rotation: v1 is AWSCURRENT, for U0; v0 is AWSPREVIOUS, for
     * U1; each user has its version's password */
    lab[0] = PREV; made[0] = 1; user[0] = 1;
    lab[1] = CUR; made[1] = 1; user[1] = 0;
    pw[0] = 1; login[0] = 1; pw[1] = 0; login[1] = 1;
    ver[0] = 0; reg[ROW(0)] = 0; live[0] = 1;   /* consumer 0 still uses v0 */
    ver[1] = NOV; live[1] = 1;                  /* consumer 1 has read nothing yet */
#ifndef SHARED_READER_ROW
    reg[1] = NOV;
#endif
    ready = 1;
    run node(0); run node(1);
    run consumers()
  }
}

/* ---- properties: scripts/check-protocol checks these (pan -N NAME) ---- */

/* 1. Exactly one version holds AWSCURRENT, in every state. */
ltl one_current { [] (ready -> NCUR == 1) }

/* 2. A credential a live consumer holds always logs in: its user's password is
 *    that version's and its login enabled. */
ltl creds_valid { [] (VALID(0) && VALID(1)) }

/* 3. No rotation completes twice: finishSecret moves AWSCURRENT onto a token at
 *    most once, and Succeeded is recorded at most once per token. */
ltl once { [] (succ[2] <= 1 && succ[3] <= 1 && moved[2] <= 1 && moved[3] <= 1) }

/* 1, 2 and 3 together, in one search: scripts/check-protocol checks this one, and
 * the three above only to name the one that fails. */
ltl safety {
  [] ((ready -> NCUR == 1) && VALID(0) && VALID(1) &&
      succ[2] <= 1 && succ[3] <= 1 && moved[2] <= 1 && moved[3] <= 1)
}

/* 4. Every started rotation ends (Succeeded, Failed or Cancelled), under weak
 *    fairness (pan -a -f). */
ltl ends { [] (RUNNING -> <> !RUNNING) }

/* 5. The lease holder starts or reattempts the due secret's rotation: the secret
 *    does not stay due with nothing running, under weak fairness (pan -a -f).
 *    (A finding until operations::reattempt saved under the holder's epoch: it kept
 *    the record's own, which after any hand-over of the lease the fence refused for
 *    ever.) */
ltl reattempt_ok { [] (DUE -> <> !DUE) }

/* 4 and 5 together, in one search: scripts/check-protocol checks this one, and
 * the two above only to name the one that fails. */
ltl liveness { [] ((RUNNING -> <> !RUNNING) && (DUE -> <> !DUE)) }

/* ---- FINDINGS: what Rotor does not have today. `scripts/check-protocol
 * --findings` checks that spin still finds each counterexample. ----
 *
 * Fixed since (commit "Fixes from the rotation protocol model"), and modelled as
 * the code now is:
 *  - reattempt_ok: operations::reattempt saved with the record's own epoch, which
 *    after a hand-over of the lease the fence refused for ever. It now saves under
 *    the holder's epoch, and reattempt_ok (5 above) holds.
 *  - A cancellation saved with the record's epoch, refused after a hand-over. It
 *    is now unfenced (epoch 0).
 *  - failed_unmoved, for a failing retirePrevious: it retried the rotation from
 *    createSecret, which then ended Failed with AWSCURRENT moved. The rotation now
 *    succeeds (rotation.retire_failed). What remains is below.
 *  - A2, narrowed: the gates write their node's noted reads first, and the
 *    retirePrevious gate waits READS_SETTLE after finishSecret. (-DLATE_REGISTRATION
 *    without the escapes moves: creds_valid holds.)
 *
 * Still found:
 *
 * -DSTALE_STEPS creds_valid, once (A1 dropped): a node that lost the lease in the
 * middle of a step still completes the step. Its retirePrevious for v2, landing
 * after the new holder retired v2 and ran v3's setSecret, disables U0 again, the
 * user v3's setSecret has just given a new password and enabled: consumers that
 * adopt v3 cannot log in. Its finishSecret for v2, landing after v3 finished,
 * reads AWSCURRENT = v3 and moves it back to v2: ctx.finish is not fenced, and
 * accepts the token of a finished rotation.
 *
 * -DLATE_REGISTRATION creds_valid (what remains of A2): a read whose write escapes
 * the gates' wait (its server died before writing it, or the write took over 1 s)
 * is invisible to the retirePrevious gate: here consumer 1's read of v2 is not in
 * the registry when v3's gate passes, and U1 is disabled under it.
 *
 * -DSHARED_READER_ROW creds_valid (A3 dropped): two readers behind one
 * PRINCIPAL@ADDRESS share a row; when one reads v1, the other, still on v0, is no
 * longer seen, and v2's setSecret changes U1's password under it.
 */

/* A finished rotation stays finished. Fails: SaveRotation overwrites the row
 * whatever its status, and the runner saves after re-reading: a cancellation
 * between its re-read and its save is undone (Cancelled -> Running), and the
 * rotation goes on. (Cancels are now unfenced, but the runner's save is not
 * conditional on the status it re-read. With -DCANCEL_RACE, a cancellation that
 * read the record before the runner recorded Succeeded also turns it into
 * Cancelled.) */
ltl finished_stays { [] !overwrote }

/* A Failed rotation left AWSCURRENT where it was. Still fails, though no longer
 * through retirePrevious: the lease holder is killed after finishSecret moved
 * AWSCURRENT onto v3 and before recording it; the new holder runs finishSecret
 * again, which fails; the rotation is retried from createSecret, setSecret
 * refuses (the pending version is AWSCURRENT, so its user is AWSCURRENT's), and
 * the rotation ends Failed ("AWSCURRENT is unchanged") with AWSCURRENT on v3. A
 * setSecret gate that times out on the retry (consumers on the new AWSPREVIOUS)
 * ends it the same way. */
ltl failed_unmoved { [] !failed_moved }
