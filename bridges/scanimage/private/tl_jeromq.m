function tl_jeromq(jar)
% Makes JeroMQ loadable: nothing to do when it already is (in MATLAB, put the jar on the static
% class path, javaclasspath.txt in prefdir: javaaddpath at acquisition start would run
% `clear java` under ScanImage), else the jar named, $TWINLOOP_JEROMQ_JAR, or Debian's.
try
    probe = javaMethod('context', 'org.zeromq.ZMQ', 1);
    probe.term();
    return
catch %#ok<CTCH>
    % not on the class path yet
end
if isempty(jar)
    jar = getenv('TWINLOOP_JEROMQ_JAR');
end
if isempty(jar)
    jar = '/usr/share/java/jeromq.jar';
end
if ~exist(jar, 'file')
    error('twinloop:jeromq', ['twinloop_si: JeroMQ is not on the Java class path and the ' ...
          'jar %s does not exist; download jeromq-<version>.jar (Maven Central, ' ...
          'org.zeromq:jeromq) and list it in javaclasspath.txt in MATLAB''s prefdir (then ' ...
          'restart MATLAB), or pass its path as the ''jar'' option, or set ' ...
          'TWINLOOP_JEROMQ_JAR (Debian: apt-get install libjeromq-java)'], jar);
end
javaaddpath(jar);
end
