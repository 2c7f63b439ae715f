function tl_jeromq(jar)
% Puts JeroMQ on the Java class path: the jar named, else $TWINLOOP_JEROMQ_JAR, else Debian's.
if isempty(jar)
    jar = getenv('TWINLOOP_JEROMQ_JAR');
end
if isempty(jar)
    jar = '/usr/share/java/jeromq.jar';
end
if any(strcmp(javaclasspath('-all'), jar))
    return
end
if ~exist(jar, 'file')
    error('twinloop:jeromq', ['twinloop_si: the JeroMQ jar %s does not exist; download ' ...
          'jeromq-<version>.jar (Maven Central, org.zeromq:jeromq) and pass its path as ' ...
          'the ''jar'' option, or set TWINLOOP_JEROMQ_JAR (Debian: apt-get install ' ...
          'libjeromq-java)'], jar);
end
javaaddpath(jar);
end
