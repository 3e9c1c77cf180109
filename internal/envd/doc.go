// Package envd owns the guest agent's wire protocol and both of its ends:
// Serve, the guest side that runs commands and moves files inside a VM, and
// Client, the host side the host agent uses to drive one guest. Both work
// over any byte stream (io.ReadWriteCloser): in production the virtio-serial
// port of docs/GUEST.md, in tests a Unix socket. cmd/envd wires the guest
// side; the host agent imports Client. Nothing else should import it.
//
// # Trust
//
// The guest runs untrusted code as root, so from the host's side everything
// the guest says is untrusted: the client bounds every message and every
// buffer, and only lets the guest report the error codes EInvalid,
// ENotFound, EConflict and ETooLarge: its refusals of a request, which a
// client may act on (errno.go maps errnos to them). Any other error of
// the guest is a fault, which a client sees as a host agent error.
//
// # Session
//
// A session starts with a line handshake on the raw byte stream, then runs a
// yamux session (host = client, guest = server) with keepalive on:
//
//	host  → guest   envd-hello <version> <nonce>\n    (repeated until answered)
//	guest → host    envd-ok <version> <nonce>\n       (one per hello it reads)
//	host  → guest   envd-go <nonce>\n
//	guest → host    envd-ready <nonce>\n
//	                yamux from here on, both ways
//
// A guest that does not speak the host's version answers
// "envd-refuse <nonce> <its version>" instead of ok. Each side skips whatever
// precedes the line it waits for, so bytes left in the channel by an earlier
// session (the host agent restarted, the VM was restored from a snapshot) are
// dropped rather than mistaken for frames; the guest also skips everything
// after ready up to the host's first yamux byte (yamux frames begin with
// version byte 0, the handshake is text), so hellos the host repeated before
// it saw ready are harmless. A guest whose session breaks (EOF, a yamux
// protocol error from stale bytes, a missed keepalive) closes it and waits for
// the next hello.
//
// # Streams
//
// Each operation is one yamux stream opened by the host. On a stream both
// sides send frames:
//
//	type (1 byte) | length (4 bytes, big endian) | payload (length bytes, ≤ 1 MiB)
//
//	'j'  a JSON message: the request (always first, host → guest), replies,
//	     exec events and exec control
//	'd'  a chunk of a file body (raw bytes)
//	'z'  end of a file body; payload is the body's total length, 8 bytes big
//	     endian, so a body cut short is never taken for a whole one
//	'1'  a chunk of a command's stdout (raw bytes, ≤ 32 KiB)
//	'2'  a chunk of a command's stderr (raw bytes, ≤ 32 KiB)
//
// A stream that ends (EOF) before its last expected frame was cut off: yamux
// reports a broken session as EOF on its streams, so only the frames say
// whether an operation completed. Operations, host → guest first:
//
//	ping   j{op:ping}                        ← j{type:ok}
//	init   j{op:init,init:{...}}             ← j{type:ok} | j{type:error}
//	exec   j{op:exec,exec:{...}}             ← j{type:start,pid} (unless no_start) | j{type:failed,...}
//	                                           | j{type:error}
//	                                         ← '1' / '2' chunks as they come
//	       j{type:stop} (optional)           ← j{type:exit,exit_code,...}
//	write  j{op:write,path}                  ← j{type:ok} | j{type:error}
//	       'd'… 'z'                          ← j{type:ok} | j{type:error}
//	read   j{op:read,path}                   ← j{type:ok,size} | j{type:error}
//	                                         ← 'd'… then 'z' | j{type:error}
//	list   j{op:list,path,depth}             ← j{type:entries,entries:[...]}… (batches)
//	                                         ← j{type:ok} | j{type:error}
//	mkdir  j{op:mkdir,path,parents}          ← j{type:ok,entry} | j{type:error}
//	remove j{op:remove,path}                 ← j{type:ok} | j{type:error}
//	stat   j{op:stat,path}                   ← j{type:ok,entry} | j{type:error}
//	move   j{op:move,path,dest}              ← j{type:ok,entry} | j{type:error}
//	watch  j{op:watch,path,recursive}        ← j{type:ok} once in place | j{type:error}
//	                                         ← j{type:events,events:[{op,path}]}… (batches)
//	                                         ← j{type:error} if it fails (ETooLarge: the
//	                                           guest could not keep up); the host closing
//	                                           its side ends the watch
//	detach j{op:detach}                      ← j{type:ok}, then the guest ends the
//	                                           session and waits for a hello
//	spawn  j{op:spawn,exec:{...},tag}        ← j{type:ok,pid,tag} | j{type:error}
//	procs  j{op:procs}                       ← j{type:procs,procs:[...]}… (batches)
//	                                         ← j{type:ok}
//	kill   j{op:kill,pid|tag,signal}         ← j{type:ok} once the leader has exited
//	                                           | j{type:error}
//	attach j{op:attach,pid|tag}              ← j{type:start,pid,tag} | j{type:error}
//	                                         ← '1' / '2' chunks: what the guest holds,
//	                                           then live output
//	                                         ← j{type:exit,exit_code}
//	pty    j{op:pty,pty:{cmd,...}|{tag}}     ← j{type:started,tag,pid} | j{type:error}
//	       'd' (input), j{type:resize,cols,  ← '1' (output) as it comes,
//	       rows}, j{type:kill}, any order      then j{type:exit,exit_code}
//
// The host closing its side of an exec stream (EOF on the guest) means the
// host went away: the guest kills the command's process group. Closing its
// side of a write stream before 'z' aborts the upload: the guest removes the
// temporary file and answers j{type:error}.
//
// # Terminals
//
// A pty stream starts a terminal (no tag) or attaches to the one tagged
// ("pty-" and 8 hex digits). A terminal is a program on a pseudo-terminal
// in a session of its own (job control works; TERM defaults to
// xterm-256color), kept by the envd process rather than the session, so it
// outlives the stream, the session and a snapshot of the VM. The host
// closing its side of a pty stream detaches: the program keeps running and
// its output is kept (the latest 256 KiB) for the next host to attach,
// which gets started, that output, then output as it comes. One host is
// attached at a time: a new one cuts the old off with j{type:error,
// code:conflict}. Output on its way to a host that goes away is lost.
// Input waits for the program apart from the stream, so a resize or kill
// never waits behind it; input past 256 frames that the program has not
// read is dropped, as a terminal with a full input buffer drops what is
// typed. kill sends SIGKILL to the program's process group and every
// process of its session. When the program exits, the attached host gets
// its exit and the terminal is gone; with none attached it waits 5 minutes
// for one. A guest has at most 32 terminals. A user other than root runs
// with its uid, gid, groups and HOME, in its home (or / without one). A
// guest from before terminals answers the pty op with an EInvalid error.
//
// # Commands
//
// A command with args runs its program directly (looked up in the command's
// PATH); without args it runs as /bin/sh -c cmd. Each runs in its own process
// group. When a timeout passes the whole group gets SIGKILL and the exit code
// is 124, as timeout(1) reports; a command ended by a signal otherwise exits
// 128+signal, as shells report. A program that is not found or cannot be
// executed exits 127 or 126 with a message on stderr (blocking exec) or is
// reported by a "failed" event (streamed exec). Blocking exec keeps at most
// 16 MiB of each of stdout and stderr; what is dropped, and a timeout, are
// noted on stderr.
//
// # Background processes
//
// spawn starts a command (as above, without a timeout) that belongs to
// envd rather than to the stream: the stream ends with the answer, and the
// process runs on whoever comes and goes. Its tag is the host's (text of
// at most 128 bytes, without '/' or control characters, not a number) or
// one envd makes up ("proc-" and 8 hex digits); a tag a running process
// holds is refused (conflict), and a program that cannot be run is
// invalid. envd keeps the last 1 MiB of each process's output, stdout and
// stderr in the order they were read, and, once it has exited, its exit
// code: for 10 minutes, and for at most the 32 processes that exited
// last. Unlike exec, envd does not cut off children that keep a process's
// output open after it exits (a server started with &): what they print
// goes on into its log until they close it. The table holds at most 256 processes, running and exited; a
// spawn past that is refused (quota_exceeded) while all of them run. kill
// and attach select a process by pid when one is given, else by tag (the
// process that last took it). kill sends the group SIGTERM and SIGKILL
// 2 s later (signal "SIGTERM" or none), or SIGKILL at once ("SIGKILL"),
// answers once the leader has exited, and then kills whatever is left of
// the group; a process that has exited is not found. attach sends what
// the log holds from its oldest byte, then output as it comes, then exit;
// a reader that falls more than the window behind skips what left it. The
// host closing an attach stream only ends the stream. The table lives as
// long as the envd serving process, across sessions: a host agent that
// restarts, or a VM restored from a snapshot, finds its processes, their
// output and their tags; envd kills them when it stops serving.
package envd
