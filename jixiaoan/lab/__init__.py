"""The lab: real, labelled IoT hotspot traffic made with real daemons and attack tools.

Linux network namespaces form a Windows-hotspot-like network (bridge on 192.168.137.0/24, NAT
to an "internet" namespace); IoT devices (camera, smart plug, TV, phone) run real servers and
clients from Debian packages; an attacker namespace runs nmap (with its telnet-brute script),
hping3, hydra, slowhttptest, ab and mosquitto clients on a schedule; tcpdump records the
hotspot bridge. Outputs are the capture, per-phase segments, corpus-format labels.csv and a
phases file (:mod:`jixiaoan.lab.output`). Entry point: ``jixiaoan lab``
(:mod:`jixiaoan.lab.cli`). Everything runs inside namespaces the lab creates and deletes
again; no lab packet leaves them.
"""
